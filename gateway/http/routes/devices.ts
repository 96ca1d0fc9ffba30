import type { Request, Response, Router } from "express";
import express from "express";
import type { DevicePipeline } from "../../delivery/pipeline.js";
import { isGatewayError } from "../../errors.js";
import { readBody } from "../body.js";
import { facts } from "../context.js";
import { parseDevicePath } from "../device-address.js";
import { askedTimeoutMs, prefersAsync, toDeviceRequest, writeDeviceResponse } from "../device-exchange.js";
import { sendError } from "../error-response.js";

export interface DeviceRouteDeps {
  pipeline: Pick<DevicePipeline, "handle">;
  maxBodyBytes: number;
}

/** `ANY /devices/{deviceId}/{rest}` (DESIGN.md §2, path addressing). */
export function deviceRoutes(deps: DeviceRouteDeps): Router {
  const router = express.Router();
  router.all(/^\/devices(\/.*)?$/, (req, res, next) => {
    // Whatever escapes the handler (even from writing an error) goes to the error handler, never
    // becomes an unhandled rejection, which would end the process with every exchange in flight.
    handle(deps, req, res).catch(next);
  });
  return router;
}

async function handle(deps: DeviceRouteDeps, req: Request, res: Response): Promise<void> {
  const f = facts(res);
  try {
    const address = parseDevicePath(req.originalUrl);
    f.deviceId = address.deviceId;
    const body = await readBody(req, deps.maxBodyBytes);
    const idempotencyKey = req.get("idempotency-key");
    const maxTimeoutMs = askedTimeoutMs(req);
    const result = await deps.pipeline.handle({
      deviceId: address.deviceId,
      message: toDeviceRequest(req, address.resource, body, f.requestId),
      respondAsync: prefersAsync(req),
      onRoute: (route) => {
        f.transport = route.transport;
      },
      ...(idempotencyKey ? { idempotencyKey } : {}),
      ...(maxTimeoutMs ? { maxTimeoutMs } : {}),
    });
    if (result.kind === "reply") {
      writeDeviceResponse(req, res, result.reply);
      return;
    }
    res.status(202).setHeader("Location", `/requests/${result.id}`).setHeader("Preference-Applied", "respond-async");
    res.json({ requestId: result.id, status: result.state });
  } catch (err) {
    // A client that hung up (mid-body or while waiting) gets nothing; the access log records 499.
    // (The response's state, not the request's: a request stream is destroyed once fully read.)
    if (res.destroyed) return;
    // Anything that is not a catalogue error is a bug: the central handler logs it and answers 500.
    if (!isGatewayError(err)) throw err;
    if (err.code === "GW_PAYLOAD_TOO_LARGE") res.setHeader("Connection", "close");
    sendError(res, err);
  }
}
