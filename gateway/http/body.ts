import type { IncomingMessage } from "node:http";
import { GatewayError } from "../errors.js";
import type { Reservation } from "../limits/byte-budget.js";

/**
 * Reads a request body into memory, up to `maxBytes`: a declared Content-Length over the limit is refused
 * before a byte is read, and a streamed body is cut at the limit. Either way the device is never reached
 * with a partial body. Bounded buffering keeps the 413 decision and the reply exact.
 *
 * With a `budget` (the instance's GATEWAY_MAX_BUFFERED_BYTES), the bytes are reserved before they are kept:
 * a declared Content-Length all at once, before a byte is read, else chunk by chunk. A body that does not fit
 * is refused with 503 GW_OVERLOADED; what it sent is discarded, not kept. The caller releases the reservation
 * when the request is over, however it ends.
 */
export function readBody(req: IncomingMessage, maxBytes: number, budget?: Reservation): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(tooLarge(maxBytes));
  }
  if (budget && declared !== undefined && !budget.reserveUpTo(Number(declared))) return Promise.reject(overBudget());
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        req.resume(); // discard the rest; the 413 goes out with Connection: close
        reject(tooLarge(maxBytes));
        return;
      }
      if (budget && !budget.reserveUpTo(size)) {
        cleanup();
        req.resume(); // discarded as it comes: nothing of it is kept
        reject(overBudget());
        return;
      }
      parts.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(parts, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
  });
}

/**
 * Whether the request has a body to read (RFC 9112 §6.3: without Transfer-Encoding or Content-Length it has
 * none; node's parser refuses the two together and any malformed length before this is asked).
 */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

function tooLarge(maxBytes: number): GatewayError {
  return new GatewayError("GW_PAYLOAD_TOO_LARGE", { message: `request body is over the limit of ${maxBytes} bytes` });
}

function overBudget(): GatewayError {
  return new GatewayError("GW_OVERLOADED", { message: "instance holds as many request and reply bytes as it may", retryAfterS: 1 });
}
