import { GatewayError } from "../errors.js";

/**
 * What Node's HTTP parser or its timers refused, as a catalogue error (the server's `clientError` event):
 * - HPE_HEADER_OVERFLOW: a request head over Node's 16 KiB (--max-http-header-size) → 431;
 * - ERR_HTTP_REQUEST_TIMEOUT: headers or the whole request not in within the configured time (a slow
 *   client, or slowloris) → 408 (RFC 9110 §15.5.9);
 * - every other parse error (bad request line, bytes not allowed in a header, conflicting or malformed
 *   Content-Length / Transfer-Encoding, which is how request smuggling is refused) → 400.
 */
export function clientErrorOf(err: NodeJS.ErrnoException): GatewayError {
  if (err.code === "HPE_HEADER_OVERFLOW") return new GatewayError("GW_HEADERS_TOO_LARGE", { message: "request head is over 16 KiB" });
  if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") return new GatewayError("GW_REQUEST_TIMEOUT");
  return new GatewayError("GW_BAD_REQUEST", { message: `request is not valid HTTP/1.1 (${err.code ?? "parse error"})` });
}
