import { GatewayError } from "../errors.js";

/**
 * XEP-0086 (Error Condition Mappings) table, read backwards: the HTTP status a device's stanza error stands for.
 * Conditions the table does not list map to 502.
 */
const XEP0086_STATUS: ReadonlyMap<string, number> = new Map(
  Object.entries({
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
  }),
);

/**
 * What ejabberd's mod_stream_mgmt writes in the `service-unavailable` it bounces for an IQ a session received
 * and never acknowledged (ejabberd 23.01, route_unacked_stanzas): unlike ejabberd_sm's "User session not
 * found" for a JID without any session. ejabberd translates the text to the server's default language when
 * the stanza has no xml:lang (the gateway's have none): a server configured for another language makes this
 * bounce read as "offline" (see README, "XEP-0198 stream management").
 */
const EJABBERD_SM_BOUNCE_TEXT = "User session terminated";

/**
 * A stanza error on the exchange. Two kinds of bounce come from the XMPP server with the device's JID as
 * their sender, and they must not be confused, since only the first proves the device was not reached:
 *
 * - No session for the full JID: the server answers at once (RFC 6120 §10.5.3.2, §8.3.3.19):
 *   `service-unavailable` (Prosody's mod_iq; ejabberd, text "User session not found"). The device is
 *   offline: 503 GW_DEVICE_OFFLINE with Retry-After, which frees an Idempotency-Key.
 * - XEP-0198 stream management: the IQ was written to the device's session, the session vanished before
 *   acknowledging it and was not resumed in time, and the server "treats unacknowledged stanzas in the same
 *   way that it would treat a stanza sent to an unavailable resource, by returning an error" (XEP-0198 §5).
 *   The device may well have acted on it. Prosody's mod_smacks bounces these as `recipient-unavailable`
 *   (type cancel, no text; nothing else in Prosody sends that condition for an IQ), ejabberd's
 *   mod_stream_mgmt as `service-unavailable` with the text "User session terminated". Neither sets `by`,
 *   so the condition and the text are all there is to tell them apart: 504 GW_OUTCOME_UNKNOWN, which keeps
 *   the key. `recipient-unavailable` is taken as "may have been delivered" whoever sends it (RFC 6120
 *   §8.3.3.13: "temporarily unavailable"): a retry refused wrongly costs less than a device acting twice.
 */
export function stanzaErrorToGatewayError(condition: string, text: string | undefined, retryAfterS: number): GatewayError {
  if (condition === "recipient-unavailable" || (condition === "service-unavailable" && text?.trim() === EJABBERD_SM_BOUNCE_TEXT)) {
    return new GatewayError("GW_OUTCOME_UNKNOWN", {
      message: `the XMPP server bounced the request (${condition}${text ? `: ${text}` : ""}) after delivering it to the device's session, which vanished without acknowledging it (XEP-0198): whether the device acted is unknown`,
    });
  }
  if (condition === "service-unavailable") {
    return new GatewayError("GW_DEVICE_OFFLINE", { retryAfterS });
  }
  // A Map, not an object: the condition is the device's text, and `constructor` must not find Object.
  const status = XEP0086_STATUS.get(condition) ?? 502;
  const message = `device answered with stanza error ${condition}${text ? `: ${text}` : ""}`;
  return new GatewayError("GW_DEVICE_ERROR", { status, message, ...(status === 429 ? { retryAfterS } : {}) });
}
