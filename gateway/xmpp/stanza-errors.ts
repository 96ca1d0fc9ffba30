import { GatewayError } from "../errors.js";

/**
 * XEP-0086 (Error Condition Mappings) table, read backwards: the HTTP status a device's stanza error stands for.
 * Conditions the table does not list map to 502.
 */
const XEP0086_STATUS: ReadonlyMap<string, number> = new Map(Object.entries({
  "bad-request": 400,
  "not-authorized": 401,
  "payment-required": 402,
  forbidden: 403,
  "item-not-found": 404,
  "not-allowed": 405,
  "not-acceptable": 406,
  "registration-required": 407,
  conflict: 409,
  "resource-constraint": 429,
  "internal-server-error": 500,
  "feature-not-implemented": 501,
  "service-unavailable": 503,
  "remote-server-timeout": 504,
}));

/**
 * A stanza error on the exchange. `service-unavailable` and `recipient-unavailable` are what Prosody and
 * ejabberd answer at once for a full JID with no session (RFC 6120 §10.5.3.2, §8.3.3.19), so they mean the
 * device is offline: 503 GW_DEVICE_OFFLINE with Retry-After, without waiting for the deadline.
 */
export function stanzaErrorToGatewayError(condition: string, text: string | undefined, retryAfterS: number): GatewayError {
  if (condition === "service-unavailable" || condition === "recipient-unavailable") {
    return new GatewayError("GW_DEVICE_OFFLINE", { retryAfterS });
  }
  // A Map, not an object: the condition is the device's text, and `constructor` must not find Object.
  const status = XEP0086_STATUS.get(condition) ?? 502;
  const message = `device answered with stanza error ${condition}${text ? `: ${text}` : ""}`;
  return new GatewayError("GW_DEVICE_ERROR", { status, message, ...(status === 429 ? { retryAfterS } : {}) });
}
