import type { HttpResponseMessage } from "../../lib/xep0332/message.js";
import { CATALOGUE, GatewayError, type ErrorCode } from "../errors.js";

/**
 * How an exchange ended, as kept in Redis for idempotent retries and asynchronous requests: the device's
 * reply byte for byte (body in base64), or the catalogue error the client would have got.
 */
export type StoredOutcome =
  | { kind: "reply"; statusCode: number; statusMessage?: string; headers: Array<[string, string]>; body: string }
  | { kind: "error"; code: ErrorCode; status: number; message: string; retryAfterS?: number };

export function storeReply(reply: HttpResponseMessage): StoredOutcome {
  return {
    kind: "reply",
    statusCode: reply.statusCode,
    ...(reply.statusMessage ? { statusMessage: reply.statusMessage } : {}),
    headers: reply.headers.map(([n, v]) => [n, v]),
    body: reply.body.toString("base64"),
  };
}

export function storeError(err: GatewayError): StoredOutcome {
  return {
    kind: "error",
    code: err.code,
    status: err.status,
    message: err.message,
    ...(err.retryAfterS === undefined ? {} : { retryAfterS: err.retryAfterS }),
  };
}

export function replyOf(outcome: Extract<StoredOutcome, { kind: "reply" }>): HttpResponseMessage {
  return {
    statusCode: outcome.statusCode,
    statusMessage: outcome.statusMessage ?? "",
    headers: outcome.headers,
    body: Buffer.from(outcome.body, "base64"),
  };
}

export function errorOf(outcome: Extract<StoredOutcome, { kind: "error" }>): GatewayError {
  return new GatewayError(outcome.code, {
    status: outcome.status,
    message: outcome.message,
    ...(outcome.retryAfterS === undefined ? {} : { retryAfterS: outcome.retryAfterS }),
  });
}

/**
 * False only for an error that proves the device was not reached (CATALOGUE's `notReached`): a retry may go
 * to the device again. Any other ending (a reply, a timeout, a broken reply) may have actuated it, so it is
 * kept as the answer to retries.
 */
export function deviceWasReached(outcome: StoredOutcome): boolean {
  return outcome.kind === "reply" || !CATALOGUE[outcome.code].notReached;
}
