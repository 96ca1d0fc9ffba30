import { validateHeaderName, validateHeaderValue, type IncomingMessage, type ServerResponse } from "node:http";
import { isHttpMethod } from "../../lib/xep0332/constants.js";
import { fromRawHeaders, stripHopByHop, type HeaderList } from "../../lib/xep0332/headers.js";
import type { HttpRequestMessage, HttpResponseMessage } from "../../lib/xep0332/message.js";
import { GatewayError } from "../errors.js";

/*
 * The two HTTP messages at the gateway's edges, over either transport: what the device sees of a client
 * request, and what the client gets of a device's answer. One rule each way, and the one writer of device
 * answers; everything above (delivery/, proxy/) uses these and nothing else.
 */

// The client's request, as the device sees it.

/** The gateway's request id, as the device and the client see it. */
export const REQUEST_ID = "X-Request-Id";

/** Fields meant for the gateway itself, or that the gateway sets: never forwarded as the client sent them. */
const NOT_FORWARDED = new Set(["x-gateway-timeout", "x-request-id"]);
/** The gateway's own fields among a client request's (lower-case name): `headersForDevice` drops them, as does the pass-through. */
export const notForwarded = (lowerName: string): boolean => NOT_FORWARDED.has(lowerName);

/**
 * What the device sees of a client request's header fields, over either transport: end-to-end fields in
 * order, repeats kept, names in the client's spelling (hop-by-hop ones dropped, RFC 9110 §7.6.1), the
 * gateway's own dropped, and the gateway's request id last (the client's replaced).
 */
export function headersForDevice(rawHeaders: string[], requestId: string): Array<[string, string]> {
  const headers = stripHopByHop(fromRawHeaders(rawHeaders), notForwarded);
  headers.push([REQUEST_ID, requestId]);
  return headers;
}

/** The device's view of a client request read whole (over XMPP, or for an Idempotency-Key's fingerprint). */
export function toDeviceRequest(
  req: { method: string; rawHeaders: string[] },
  resource: string,
  body: Buffer,
  requestId: string,
): HttpRequestMessage {
  const method = req.method.toUpperCase();
  if (!isHttpMethod(method)) {
    throw new GatewayError("GW_METHOD_NOT_ALLOWED", {
      message: `method ${method} is not carried to devices (XEP-0332 carries ${"OPTIONS GET HEAD POST PUT DELETE TRACE PATCH"})`,
    });
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

// The device's answer, as the client gets it.

/**
 * The one writer of a device's answer to the client, over either transport, and the one rule for its header
 * fields: the device's end-to-end fields in its order and spelling, repeats kept (Set-Cookie!); hop-by-hop
 * fields dropped (RFC 9110 §7.6.1); the device's X-Request-Id dropped, the gateway's set (it is on every
 * response); the device's status and reason phrase.
 *
 * Where the two transports legitimately differ is the body's framing, and only there:
 * - over XMPP the body is held whole (XEP-0332 carries bytes, not HTTP framing): Content-Length is the
 *   gateway's, from the bytes it holds, except where the body is absent by definition (HEAD, 304), where the
 *   device's declared length is kept; 204, 304 and HEAD answers have no body. An empty reason phrase is no
 *   reason phrase (node writes the standard one).
 * - over HTTP the body streams as the device framed it: its Content-Length is kept, except beside
 *   Transfer-Encoding (RFC 9112 §6.3: a proxy MUST remove it then); its reason phrase is kept even empty.
 */
export type AnswerFraming = { kind: "held"; method: string } | { kind: "streamed"; chunked: boolean };

export interface AnswerHead {
  statusCode: number;
  /** Undefined: node's standard reason phrase. */
  statusMessage: string | undefined;
  headers: Array<[string, string]>;
}

/** The device's header fields the client gets (see above). */
export function answerHeaders(headers: HeaderList, framing: AnswerFraming, statusCode: number): Array<[string, string]> {
  const dropLength = framing.kind === "held" ? !keepsDeclaredLength(framing.method, statusCode) : framing.chunked;
  return stripHopByHop(headers, (lower) => lower === "x-request-id" || (dropLength && lower === "content-length"));
}

/**
 * Writes the head of a device's answer. Throws when node refuses it (nothing went out then: the device's
 * fields and reason phrase are taken off again, so that an error written next carries none of them).
 *
 * The fields go to writeHead as one list, X-Request-Id last, each checked first with node's own checks
 * (those appendHeader makes). Given a list and no header table, node writes the head straight from the
 * list: no table of its own, and no entry per field, on a response that may have been held for a long time
 * (such a table points from the old generation at young objects; docs/benchmark.md, "What a request leaves
 * behind"). Checked first, because node checks a list's fields only as it writes them, recording what the
 * ones before said of the body's framing (Content-Length, chunked) on the response as it goes: a field
 * refused halfway would leave that framing to the error written next. A response that has a header table
 * already gets the list merged into it (node's rule for writeHead after setHeader: a field of the list
 * replaces the table's of that name, repeats and all).
 */
export function writeAnswerHead(res: ServerResponse, head: AnswerHead, requestId: string): void {
  const fields: string[] = [];
  try {
    for (const [name, value] of head.headers) {
      validateHeaderName(name);
      validateHeaderValue(name, value);
      fields.push(name, value);
    }
    fields.push(REQUEST_ID, requestId);
    res.writeHead(head.statusCode, head.statusMessage, fields);
  } catch (err) {
    for (const [name] of head.headers) res.removeHeader(name);
    res.statusMessage = "";
    throw err;
  }
}

/** The head of a device's answer streaming over the HTTP pass-through. */
export function streamedHead(proxyRes: IncomingMessage): AnswerHead {
  const statusCode = proxyRes.statusCode ?? 502;
  const chunked = proxyRes.headers["transfer-encoding"] !== undefined;
  return {
    statusCode,
    statusMessage: proxyRes.statusMessage ?? "",
    headers: answerHeaders(fromRawHeaders(proxyRes.rawHeaders), { kind: "streamed", chunked }, statusCode),
  };
}

/** Writes an answer held whole (over XMPP, replayed for an Idempotency-Key, kept for GET /requests/{id}): byte-exact. */
export function writeHeldAnswer(method: string, res: ServerResponse, reply: HttpResponseMessage, requestId: string): void {
  const headers = answerHeaders(reply.headers, { kind: "held", method }, reply.statusCode);
  const noBody = method === "HEAD" || reply.statusCode === 204 || reply.statusCode === 304;
  if (!noBody) headers.push(["Content-Length", String(reply.body.length)]);
  writeAnswerHead(res, { statusCode: reply.statusCode, statusMessage: reply.statusMessage || undefined, headers }, requestId);
  if (noBody) res.end();
  else res.end(reply.body);
}

/** Content-Length is recomputed from the body we hold, except where the body is absent by definition. */
function keepsDeclaredLength(method: string, status: number): boolean {
  return method === "HEAD" || status === 304;
}
