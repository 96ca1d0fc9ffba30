import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { forEachEndToEnd } from "../../lib/xep0332/headers.js";
import { notForwarded, REQUEST_ID } from "../messages/device-messages.js";

/**
 * What the device sees of a client request on the HTTP pass-through, as the header object http-proxy-3
 * takes: the fields of messages/device-messages.ts (the same as over XMPP) in the library's shape. Pure
 * functions; the proxy library is not involved here. (The client's view of the answer: messages/device-messages.ts.)
 */

/**
 * Names written under their lower-case spelling: http-proxy-3 reads or writes them so (changeOrigin sets
 * `host`, its `deleteLength` pass looks at the framing headers), and `appendForwarded` appends to the
 * `x-forwarded-*` lists. Under any other spelling a second field would go out beside ours. Every other name keeps the
 * client's spelling (RFC 9110 §5.1: names are case-insensitive, but legacy devices are not always forgiving).
 */
const LIBRARY_SPELLING = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-port",
  "x-forwarded-proto",
]);

/** List-valued fields that may be combined into one line with commas (RFC 9110 §5.3). */
const COMBINED = new Set(["x-forwarded-for", "x-forwarded-host", "x-forwarded-port", "x-forwarded-proto"]);

/**
 * How the request body is delimited on the hop to the device (RFC 9112 §6): one framing header, or none when
 * the request has no body (RFC 9112 §6.3: a request without Content-Length or Transfer-Encoding has none).
 */
export type Framing = readonly [name: "content-length" | "transfer-encoding", value: string] | undefined;

export function requestFraming(req: IncomingMessage, bufferedBody: Buffer | undefined): Framing {
  const declared = req.headers["content-length"];
  const codings = req.headers["transfer-encoding"];
  if (bufferedBody !== undefined) {
    const hadBody = bufferedBody.length > 0 || declared !== undefined || codings !== undefined;
    return hadBody ? ["content-length", String(bufferedBody.length)] : undefined;
  }
  // Transfer-Encoding is hop-by-hop, but the bytes node hands us are only de-chunked: re-sending the
  // client's codings (which end in `chunked`, or node's parser would have refused the request) describes them
  // exactly. It overrides any Content-Length (RFC 9112 §6.3), which node refuses alongside it anyway.
  if (codings !== undefined) return ["transfer-encoding", codings];
  if (declared !== undefined) return ["content-length", declared];
  return undefined;
}

/** Puts exactly our framing on an outgoing header object, whatever was there before. */
export function applyFraming(headers: IncomingHttpHeaders, framing: Framing): void {
  delete headers["content-length"];
  delete headers["transfer-encoding"];
  if (framing) headers[framing[0]] = framing[1];
}

/**
 * The request header fields for the device, as the header object http-proxy-3 copies into its request:
 * - the fields of `headersForDevice` (hop-by-hop and the gateway's own dropped, the gateway's X-Request-Id),
 *   repeated fields as repeated lines, names in the client's spelling;
 * - X-Forwarded-For, -Port, -Proto and -Host, each appended to any list already there (`appendForwarded`);
 * - the body's framing (see `requestFraming`).
 * `host` stays the client's: the library's changeOrigin replaces it.
 */
export function deviceRequestHeaders(req: IncomingMessage, requestId: string, framing: Framing): IncomingHttpHeaders {
  // No prototype: a field named `__proto__` is just a field.
  const out = Object.create(null) as Record<string, string | string[]>;
  let keyOf: Map<string, string> | undefined;
  // Straight from node's rawHeaders (this runs on every request), by the rule of `headersForDevice`.
  forEachEndToEnd(req.rawHeaders, notForwarded, (name, lower, value) => {
    if (lower === "host" || lower === "content-length") return;
    const seen = keyOf?.get(lower);
    if (seen === undefined) {
      const key = LIBRARY_SPELLING.has(lower) ? lower : name;
      (keyOf ??= new Map()).set(lower, key);
      out[key] = value;
      return;
    }
    const previous = out[seen] as string | string[];
    if (COMBINED.has(lower)) out[seen] = `${String(previous)}, ${value}`;
    else out[seen] = [...(Array.isArray(previous) ? previous : [previous]), value];
  });
  const host = req.headers.host;
  if (host !== undefined) out.host = host;
  appendForwarded(out, req, host);
  // The gateway's request id comes last, after Host.
  out[REQUEST_ID] = requestId;
  applyFraming(out, framing);
  return out;
}

/**
 * The X-Forwarded-* fields (the de facto convention RFC 7239 §1 describes; what http-proxy's `xfwd` option
 * writes, done here in the same pass): the client's address, the port and scheme it reached the gateway on,
 * each appended to the list the client sent (comma-separated), and the client's Host to X-Forwarded-Host
 * (without a Host, which only HTTP/1.0 allows, that list stays as it was, or empty).
 */
function appendForwarded(out: Record<string, string | string[]>, req: IncomingMessage, host: string | undefined): void {
  const encrypted = (req.socket as { encrypted?: boolean }).encrypted === true;
  appendToList(out, "x-forwarded-for", req.socket.remoteAddress ?? "");
  appendToList(out, "x-forwarded-port", portOf(host) ?? (encrypted ? "443" : "80"));
  appendToList(out, "x-forwarded-proto", encrypted ? "https" : "http");
  if (host !== undefined) appendToList(out, "x-forwarded-host", host);
  else out["x-forwarded-host"] ??= "";
}

/** `value` appended to the comma-separated list under `name` (the list the client sent, combined), or the list started. */
function appendToList(out: Record<string, string | string[]>, name: string, value: string): void {
  const previous = out[name];
  out[name] = typeof previous === "string" && previous !== "" ? `${previous},${value}` : value;
}

/** The port of a Host value (`name:port`, `[v6]:port`), if it names one (RFC 9112 §3.2, RFC 3986 §3.2.3). */
function portOf(host: string | undefined): string | undefined {
  if (host === undefined) return undefined;
  const colon = host.lastIndexOf(":");
  if (colon < 0 || colon < host.lastIndexOf("]")) return undefined;
  const port = host.slice(colon + 1);
  return /^\d+$/.test(port) ? port : undefined;
}

/**
 * Whether the client asks to switch protocols (RFC 9110 §7.8: Upgrade, with `upgrade` among the Connection
 * options). An offer of h2c only is not: RFC 9113 §3.1 deprecates it and a server MAY ignore an Upgrade
 * (RFC 9110 §7.8), which is what stripping it does (curl --http2 sends one on plain http).
 */
export function asksToSwitchProtocols(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  const connection = req.headers.connection;
  if (!upgrade || !connection) return false;
  if (!connection.split(",").some((option) => option.trim().toLowerCase() === "upgrade")) return false;
  return upgrade.split(",").some((protocol) => protocol.trim().toLowerCase() !== "h2c");
}
