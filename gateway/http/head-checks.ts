import type { IncomingMessage } from "node:http";
import { GatewayError } from "../errors.js";
import { hostHeaderProblem } from "./host-header.js";

/**
 * What Node's parser lets through but the gateway refuses in a request head, before anything else looks at
 * it (the caller answers with the connection closed, as for a head Node refuses itself):
 * - more header fields than `maxHeaders`: 431 GW_HEADERS_TOO_LARGE (RFC 6585 §5). A flood of small fields
 *   fits in Node's 16 KiB head limit, and each would be carried to the device (over XMPP, one element each);
 * - an HTTP/1.1 request without Host, any request with more than one Host line or a Host that is not
 *   `host[:port]`: 400 GW_BAD_REQUEST (RFC 9112 §3.2 says a server MUST; host-header.ts). Node's own check
 *   (missing Host only) answers a bare-text 400, so it is off (server.ts) and done here, with the JSON error.
 */
export function requestHeadProblem(req: IncomingMessage, maxHeaders: number): GatewayError | undefined {
  const fields = req.rawHeaders.length / 2;
  if (fields > maxHeaders) {
    return new GatewayError("GW_HEADERS_TOO_LARGE", { message: `request has ${fields} header fields, over the limit of ${maxHeaders}` });
  }
  const problem = hostHeaderProblem(req);
  return problem === undefined ? undefined : new GatewayError("GW_BAD_REQUEST", { message: problem });
}
