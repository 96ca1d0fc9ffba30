import type { Request, Response } from "express";
import { isHttpMethod } from "../../lib/xep0332/constants.js";
import { fromRawHeaders, stripHopByHop } from "../../lib/xep0332/headers.js";
import type { HttpRequestMessage, HttpResponseMessage } from "../../lib/xep0332/message.js";
import { GatewayError } from "../errors.js";

/** Headers meant for the gateway itself, not for the device. */
const GATEWAY_ONLY = new Set(["x-gateway-timeout"]);

/** The device's view of a client request: end-to-end headers in order, our request id, the exact body. */
export function toDeviceRequest(req: Request, resource: string, body: Buffer, requestId: string): HttpRequestMessage {
  const method = req.method.toUpperCase();
  if (!isHttpMethod(method)) {
    throw new GatewayError("GW_METHOD_NOT_ALLOWED", { message: `method ${method} is not carried to devices (XEP-0332 carries ${"OPTIONS GET HEAD POST PUT DELETE TRACE PATCH"})` });
  }
  const headers = stripHopByHop(fromRawHeaders(req.rawHeaders)).filter(([n]) => {
    const lower = n.toLowerCase();
    return !GATEWAY_ONLY.has(lower) && lower !== "x-request-id";
  });
  headers.push(["X-Request-Id", requestId]);
  return { method, resource, headers, body };
}

/**
 * The deadline of one exchange: the configured one, or shorter when the client says so in
 * `X-Gateway-Timeout` (milliseconds). A client can shorten the wait, never lengthen it.
 */
export function deadlineMs(req: Request, configuredMs: number): number {
  return Math.min(configuredMs, askedTimeoutMs(req) ?? Infinity);
}

/** The client's `X-Gateway-Timeout` in milliseconds, when it is a positive whole number. */
function askedTimeoutMs(req: Request): number | undefined {
  const asked = req.get("x-gateway-timeout");
  return asked && /^\d{1,9}$/.test(asked) && Number(asked) > 0 ? Number(asked) : undefined;
}

/** RFC 7240 §4.1: `Prefer: respond-async`, among other preferences, in any case. */
export function prefersAsync(req: Request): boolean {
  const prefer = req.get("prefer");
  return prefer !== undefined && prefer.split(",").some((p) => p.split(";")[0]?.trim().toLowerCase() === "respond-async");
}

/** Content-Length is recomputed from the body we hold, except where the body is absent by definition. */
function keepsDeclaredLength(method: string, status: number): boolean {
  return method === "HEAD" || status === 304;
}

/** Writes the device's reply byte-exact: status, reason, end-to-end headers in order (repeats kept), body. */
export function writeDeviceResponse(req: Request, res: Response, reply: HttpResponseMessage): void {
  res.statusCode = reply.statusCode;
  if (reply.statusMessage) res.statusMessage = reply.statusMessage;
  const keepLength = keepsDeclaredLength(req.method, reply.statusCode);
  for (const [name, value] of stripHopByHop(reply.headers)) {
    const lower = name.toLowerCase();
    if (lower === "x-request-id" || (lower === "content-length" && !keepLength)) continue;
    res.appendHeader(name, value);
  }
  const noBody = req.method === "HEAD" || reply.statusCode === 204 || reply.statusCode === 304;
  if (noBody) {
    res.end();
    return;
  }
  res.setHeader("Content-Length", String(reply.body.length));
  res.end(reply.body);
}
