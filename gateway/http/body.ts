import type { Request } from "express";
import { GatewayError } from "../errors.js";

/**
 * Reads a request body into memory, up to `maxBytes`: a declared Content-Length over the limit is refused
 * before a byte is read, and a streamed body is cut at the limit. Either way the device is never reached
 * with a partial body. Bounded buffering keeps the 413 decision and the reply exact.
 */
export function readBody(req: Request, maxBytes: number): Promise<Buffer> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(tooLarge(maxBytes));
  }
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

function tooLarge(maxBytes: number): GatewayError {
  return new GatewayError("GW_PAYLOAD_TOO_LARGE", { message: `request body is over the limit of ${maxBytes} bytes` });
}
