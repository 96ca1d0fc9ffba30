import type { ServerResponse } from "node:http";
import type { ErrorRequestHandler } from "express";
import { errorBody, GatewayError, isGatewayError, toGatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import { facts } from "./context.js";

/**
 * A JSON answer, written with node's own calls (the device lane never enters Express): the headers Express's
 * `res.json` sets (RFC 8259 §8.1: UTF-8), Content-Length included; a HEAD request gets the head only (node
 * drops the body).
 */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}

/**
 * Writes a catalogue error as JSON, with Retry-After where the error has one. It must never throw: it is
 * what runs when something else failed. A failed attempt to write another head (node's writeHead assigns
 * `statusMessage` before it validates it, and throws) can leave a reason phrase that would make this write
 * throw too: the status message is reset to the catalogue status's own, and should writing still fail,
 * the response is destroyed (the client sees the connection end) rather than the error escaping.
 */
export function sendError(res: ServerResponse, err: GatewayError): void {
  const f = facts(res);
  f.errorCode = err.code;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  try {
    res.statusMessage = "";
    if (err.retryAfterS !== undefined) res.setHeader("Retry-After", String(err.retryAfterS));
    sendJson(res, err.status, errorBody(err, f.requestId, f.deviceId));
  } catch {
    res.destroy();
  }
}

/** Anything thrown becomes a catalogue error; unexpected ones are logged with their stack. */
export function answerThrown(logger: Logger, res: ServerResponse, err: unknown): void {
  const gwErr = toGatewayError(normalizeExpressError(err));
  if (gwErr.code === "GW_INTERNAL") logger.error({ err: gwErr.cause ?? err, requestId: facts(res).requestId }, "unexpected error");
  sendError(res, gwErr);
}

/** Express's last handler: answerThrown. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, _req, res, _next) => answerThrown(logger, res, err);
}

/**
 * Express, its router and body parsers signal client errors with `status`/`type` (a route parameter that is
 * not valid percent-encoding is a URIError with status 400): keep them 4xx, not 500.
 */
function normalizeExpressError(err: unknown): unknown {
  if (isGatewayError(err)) return err;
  const e = err as { status?: number; type?: string; message?: string };
  if (e?.type === "entity.too.large" || e?.status === 413) return new GatewayError("GW_PAYLOAD_TOO_LARGE");
  if (typeof e?.status === "number" && e.status >= 400 && e.status < 500) {
    return new GatewayError("GW_BAD_REQUEST", { message: typeof e.message === "string" ? e.message.slice(0, 200) : undefined, cause: err });
  }
  return err;
}
