import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { errorBody } from "../errors.js";
import type { Logger } from "../log.js";
import { connectRefused, DEVICE_METHODS } from "./addressing.js";

/** request-id.ts's rule: the caller's X-Request-Id when it is a sane token, else a new UUID. */
const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

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
    const given = req.headers["x-request-id"];
    const requestId = typeof given === "string" && ACCEPTABLE_ID.test(given) ? given : randomUUID();
    const body = JSON.stringify(errorBody(err, requestId));
    socket.on("error", () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${err.status} Method Not Allowed\r\n` +
        `Allow: ${DEVICE_METHODS}\r\n` +
        "Content-Type: application/json; charset=utf-8\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\n` +
        "Connection: close\r\n\r\n" +
        body,
    );
    const target = req.url ?? "";
    logger?.info(
      { requestId, method: "CONNECT", target: target.length > 200 ? `${target.slice(0, 200)}…` : target, status: err.status, code: err.code },
      "request",
    );
  };
}
