import type { IncomingMessage, ServerResponse } from "node:http";
import { setFacts, type RequestFacts } from "./context.js";
import { requestIdOf } from "./raw-error.js";

/** `X-Request-Id` on every response: the caller's, when it is a sane token, else a new UUID. */
export function assignRequestId(req: IncomingMessage, res: ServerResponse): RequestFacts {
  const id = requestIdOf(req.headers);
  res.setHeader("X-Request-Id", id);
  return setFacts(res, { requestId: id, transport: "none" });
}

/** The same as a middleware, for an app of its own (tests). */
export function requestId(): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  return (req, res, next) => {
    assignRequestId(req, res);
    next();
  };
}
