import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "../log.js";
import { connectRefused, DEVICE_METHODS } from "./addressing.js";
import { requestIdOf, writeRawError } from "./raw-error.js";

/**
 * Node hands a CONNECT request to the server's `connect` event, never to the app (whose router could not
 * route its authority-form target anyway), and when nobody listens it closes the connection without a word.
 * This listener answers 405 GW_METHOD_NOT_ALLOWED, the same JSON error and X-Request-Id as any other
 * gateway error, with `Allow` listing what devices carry, then closes the connection: the gateway is never
 * an open proxy, no tunnel is ever opened and the target is never looked at. Wiring:
 *
 *   server.on("connect", answerConnect(logger));
 */
export function answerConnect(logger?: Pick<Logger, "info">): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  return (req, socket) => {
    const err = connectRefused();
    const requestId = requestIdOf(req.headers);
    writeRawError(socket, err, requestId, { Allow: DEVICE_METHODS });
    const target = req.url ?? "";
    logger?.info(
      {
        requestId,
        method: "CONNECT",
        target: target.length > 200 ? `${target.slice(0, 200)}…` : target,
        status: err.status,
        code: err.code,
      },
      "request",
    );
  };
}
