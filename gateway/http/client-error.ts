import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { ConnectionTracker } from "./connections.js";
import { writeErrorResponse, writeRawError } from "./raw-error.js";

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

/**
 * The server's `clientError` listener. A request Node refused (malformed, head too large, too slow) gets the
 * JSON error every gateway error has, then the connection is closed. When the request was already handed to
 * the app (its body broke off or came too slowly), the error goes out as that request's response if it has
 * not started, else the connection is only closed.
 */
export function answerClientError(
  connections: ConnectionTracker,
  logger?: Pick<Logger, "info">,
): (err: NodeJS.ErrnoException, socket: Duplex) => void {
  return (err, socket) => {
    if (err.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const gwErr = clientErrorOf(err);
    const inProgress = connections.inProgress(socket as Socket);
    if (inProgress.length === 0) {
      const requestId = randomUUID();
      writeRawError(socket, gwErr, requestId);
      logger?.info({ requestId, status: gwErr.status, code: gwErr.code, parser: err.code }, "request");
      return;
    }
    const res = inProgress[0];
    if (inProgress.length > 1 || !res || res.headersSent) {
      socket.destroy();
      return;
    }
    writeErrorResponse(res, gwErr);
  };
}

/**
 * The app's final handler, for what Express's router never hands to the app's middleware at all: a target it
 * cannot find a path in (`OPTIONS http://[`). Without it Express answers an HTML 404.
 */
export function answerUnroutable(logger?: Pick<Logger, "info">): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const err = new GatewayError("GW_BAD_REQUEST", { message: "the request target cannot be read as a path or an absolute URI" });
    writeErrorResponse(res, err);
    const target = req.url ?? "";
    logger?.info(
      { method: req.method, target: target.length > 200 ? `${target.slice(0, 200)}…` : target, status: err.status, code: err.code },
      "request",
    );
  };
}
