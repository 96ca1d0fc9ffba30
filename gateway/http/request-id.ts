import type { RequestHandler } from "express";
import { facts } from "./context.js";
import { requestIdOf } from "./raw-error.js";

/** `X-Request-Id` on every response: the caller's, when it is a sane token, else a new UUID. */
export function requestId(): RequestHandler {
  return (req, res, next) => {
    const id = requestIdOf(req.headers);
    Object.assign(facts(res), { requestId: id, transport: "none" });
    res.setHeader("X-Request-Id", id);
    next();
  };
}
