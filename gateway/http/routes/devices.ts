import type { Request, Response, Router } from "express";
import express from "express";
import type { HttpRequestMessage, HttpResponseMessage } from "../../../adapters/xep0332/message.js";
import { isGatewayError } from "../../errors.js";
import type { DeviceResolver } from "../../registry/resolver.js";
import { readBody } from "../body.js";
import { facts } from "../context.js";
import { parseDevicePath } from "../device-address.js";
import { deadlineMs, toDeviceRequest, writeDeviceResponse } from "../device-exchange.js";
import { sendError } from "../error-response.js";

export interface DeviceRouteDeps {
  resolver: DeviceResolver;
  exchange(req: { deviceId: string; jid: string; message: HttpRequestMessage; timeoutMs: number }): Promise<HttpResponseMessage>;
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
    const route = await deps.resolver.resolve(address.deviceId);
    f.transport = route.transport;
    const message = toDeviceRequest(req, address.resource, body, f.requestId);
    const reply = await deps.exchange({ deviceId: route.deviceId, jid: route.jid, message, timeoutMs: deadlineMs(req, route.timeoutMs) });
    writeDeviceResponse(req, res, reply);
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
