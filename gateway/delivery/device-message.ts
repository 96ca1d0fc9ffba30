import { isHttpMethod } from "../../lib/xep0332/constants.js";
import { fromRawHeaders, stripHopByHop } from "../../lib/xep0332/headers.js";
import type { HttpRequestMessage } from "../../lib/xep0332/message.js";
import { GatewayError } from "../errors.js";

/** The gateway's request id, as the device and the client see it. */
export const REQUEST_ID = "X-Request-Id";

/** Fields meant for the gateway itself, or that the gateway sets: never forwarded as the client sent them. */
const NOT_FORWARDED = new Set(["x-gateway-timeout", "x-request-id"]);

/**
 * What the device sees of a client request's header fields, over either transport: end-to-end fields in
 * order, repeats kept, names in the client's spelling (hop-by-hop ones dropped, RFC 9110 §7.6.1), the
 * gateway's own dropped, and the gateway's request id last (the client's replaced).
 */
export function headersForDevice(rawHeaders: string[], requestId: string): Array<[string, string]> {
  const headers = stripHopByHop(fromRawHeaders(rawHeaders)).filter(([n]) => !NOT_FORWARDED.has(n.toLowerCase()));
  headers.push([REQUEST_ID, requestId]);
  return headers;
}

/** The device's view of a client request read whole (over XMPP, or for an Idempotency-Key's fingerprint). */
export function toDeviceRequest(req: { method: string; rawHeaders: string[] }, resource: string, body: Buffer, requestId: string): HttpRequestMessage {
  const method = req.method.toUpperCase();
  if (!isHttpMethod(method)) {
    throw new GatewayError("GW_METHOD_NOT_ALLOWED", { message: `method ${method} is not carried to devices (XEP-0332 carries ${"OPTIONS GET HEAD POST PUT DELETE TRACE PATCH"})` });
  }
  return { method, resource, headers: headersForDevice(req.rawHeaders, requestId), body };
}

/**
 * The request id of a request that waited in the offline queue: it travels in its stored message, as the
 * X-Request-Id field the device gets (live requests carry it as a value).
 */
export function requestIdOf(message: HttpRequestMessage): string | undefined {
  return message.headers.find(([name]) => name.toLowerCase() === "x-request-id")?.[1];
}
