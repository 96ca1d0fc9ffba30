import type { Request, Response } from "express";
import type { HttpResponseMessage } from "../../lib/xep0332/message.js";
import { writeHeldAnswer } from "../delivery/client-answer.js";
import { facts } from "./context.js";

export { toDeviceRequest } from "../delivery/device-message.js";

/**
 * The deadline of one exchange: the configured one, or shorter when the client says so in
 * `X-Gateway-Timeout` (milliseconds). A client can shorten the wait, never lengthen it.
 */
export function deadlineMs(req: Request, configuredMs: number): number {
  return Math.min(configuredMs, askedTimeoutMs(req) ?? Infinity);
}

/** The client's `X-Gateway-Timeout` in milliseconds, when it is a positive whole number. */
function askedTimeoutMs(req: Request): number | undefined {
  const asked = req.get("x-gateway-timeout");
  return asked && /^\d{1,9}$/.test(asked) && Number(asked) > 0 ? Number(asked) : undefined;
}

/** RFC 7240 §4.1: `Prefer: respond-async`, among other preferences, in any case. */
export function prefersAsync(req: Request): boolean {
  const prefer = req.get("prefer");
  return prefer !== undefined && prefer.split(",").some((p) => p.split(";")[0]?.trim().toLowerCase() === "respond-async");
}

/** The device's reply, held whole, to the client (delivery/client-answer.ts). */
export function writeDeviceResponse(req: Request, res: Response, reply: HttpResponseMessage): void {
  writeHeldAnswer(req.method, res, reply, facts(res).requestId);
}
