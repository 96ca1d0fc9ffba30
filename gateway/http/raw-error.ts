import { randomUUID } from "node:crypto";
import { STATUS_CODES, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { errorBody, type GatewayError } from "../errors.js";
import type { RequestFacts } from "./context.js";

const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** A request's id: the caller's X-Request-Id when it is a sane token, else a new UUID. */
export function requestIdOf(headers: IncomingHttpHeaders | undefined): string {
  const given = headers?.["x-request-id"];
  return typeof given === "string" && ACCEPTABLE_ID.test(given) ? given : randomUUID();
}

/**
 * A catalogue error written straight onto a socket, then the connection closed: for what never reaches the
 * app (CONNECT, requests Node's parser refuses), so that these too get the JSON error and X-Request-Id every
 * other gateway error has.
 */
export function writeRawError(socket: Duplex, err: GatewayError, requestId: string, extraHeaders: Record<string, string> = {}): void {
  const body = JSON.stringify(errorBody(err, requestId));
  const extra = Object.entries(extraHeaders)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.on("error", () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${err.status} ${STATUS_CODES[err.status] ?? ""}\r\n` +
      extra +
      "Content-Type: application/json; charset=utf-8\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-Id: ${requestId}\r\n` +
      "Connection: close\r\n\r\n" +
      body,
  );
}

/**
 * A catalogue error as the response to a request the app is still handling (its body never came in whole),
 * then the connection closed: the app's own answer could only come after a body that will not arrive.
 */
export function writeErrorResponse(res: ServerResponse, err: GatewayError): void {
  // The request's facts (Express's res.locals, see context.ts), when the app got that far: its own id (which
  // may not be on the head yet), and the access log's record of it.
  const locals = (res as { locals?: Partial<RequestFacts> }).locals;
  const given = res.getHeader("x-request-id");
  const requestId = locals?.requestId || (typeof given === "string" ? given : randomUUID());
  const body = JSON.stringify(errorBody(err, requestId));
  if (locals) locals.errorCode = err.code;
  res.writeHead(err.status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    "X-Request-Id": requestId,
    Connection: "close",
  });
  res.end(body);
}
