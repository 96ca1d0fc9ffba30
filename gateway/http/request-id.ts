import { randomUUID } from "node:crypto";
import type { RequestHandler } from "express";
import { facts } from "./context.js";

const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** `X-Request-Id` on every response: the caller's, when it is a sane token, else a new UUID. */
export function requestId(): RequestHandler {
  return (req, res, next) => {
    const given = req.get("x-request-id");
    const id = given && ACCEPTABLE_ID.test(given) ? given : randomUUID();
    Object.assign(facts(res), { requestId: id, transport: "none" });
    res.setHeader("X-Request-Id", id);
    next();
  };
}
