import type { NextFunction, Request, RequestHandler, Response } from "express";
import type { DeviceDelivery } from "../../delivery/deliver.js";
import type { DevicePipeline } from "../../delivery/pipeline.js";
import { isGatewayError } from "../../errors.js";
import type { Admission } from "../../limits/admission.js";
import type { DeviceResolver, DeviceRoute } from "../../registry/resolver.js";
import { readBody } from "../body.js";
import { facts } from "../context.js";
import type { DeviceAddress } from "../device-address.js";
import { deadlineMs, prefersAsync, toDeviceRequest, writeDeviceResponse } from "../device-exchange.js";
import { sendError } from "../error-response.js";
import { answerOfReply, observeAnswer, type Answer, type ShadowComparisons, type Side } from "../../delivery/shadow.js";

/** Which device a request is for, if any (DESIGN.md §2: path, Host or forward-proxy addressing). */
export interface Addressing {
  address(req: Request): Promise<DeviceAddress | undefined>;
}

export interface DeviceRouteDeps {
  addressing: Addressing;
  resolver: DeviceResolver;
  pipeline: Pick<DevicePipeline, "handle">;
  delivery: Pick<DeviceDelivery, "proxy" | "deliver">;
  shadow: Pick<ShadowComparisons, "record">;
  /** The instance's in-flight ceiling and the per-client rate limit, passed before any device work. */
  admission: Pick<Admission, "admit">;
  maxBodyBytes: number;
}

/**
 * Requests for devices, however they are addressed. Mounted before the gateway's own routes: with Host or
 * forward-proxy addressing, `GET /healthz` may well be a device's own path. Anything that is not a device
 * request goes on to the gateway's routes.
 */
export function deviceRequests(deps: DeviceRouteDeps): RequestHandler {
  // Whatever escapes the handler (even from writing an error) goes to the error handler, never becomes an
  // unhandled rejection, which would end the process with every exchange in flight.
  return (req, res, next) => {
    handle(deps, req, res, next).catch(next);
  };
}

async function handle(deps: DeviceRouteDeps, req: Request, res: Response, next: NextFunction): Promise<void> {
  const f = facts(res);
  try {
    const address = await deps.addressing.address(req);
    if (!address) {
      next();
      return;
    }
    f.deviceId = address.deviceId;
    await deps.admission.admit(req, res);
    const route = await deps.resolver.resolve(address.deviceId);
    f.transport = route.transport;
    const timeoutMs = deadlineMs(req, route.timeoutMs);
    if (route.transport === "http") {
      await deps.delivery.proxy(route, req, res, { resource: address.resource, timeoutMs, requestId: f.requestId });
      return;
    }
    if (route.transport === "shadow") {
      await inShadow(deps, route, address, timeoutMs, req, res);
      return;
    }
    await overXmpp(deps, route, address, timeoutMs, req, res);
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

async function overXmpp(deps: DeviceRouteDeps, route: DeviceRoute, address: DeviceAddress, timeoutMs: number, req: Request, res: Response): Promise<void> {
  const f = facts(res);
  const body = await readBody(req, deps.maxBodyBytes);
  const idempotencyKey = req.get("idempotency-key");
  const respondAsync = prefersAsync(req);
  let result;
  try {
    result = await deps.pipeline.handle({
      route,
      message: toDeviceRequest(req, address.resource, body, f.requestId),
      respondAsync,
      maxTimeoutMs: timeoutMs,
      ...(idempotencyKey ? { idempotencyKey } : {}),
    });
  } catch (err) {
    // During a migration, an XMPP device that is offline may still answer at its legacy address.
    if (isGatewayError(err) && err.code === "GW_DEVICE_OFFLINE" && route.fallback === "http") {
      f.transport = "http";
      await deps.delivery.proxy(route, req, res, { resource: address.resource, timeoutMs, requestId: f.requestId, body });
      return;
    }
    throw err;
  }
  if (result.kind === "reply") {
    writeDeviceResponse(req, res, result.reply);
    return;
  }
  res.status(202).setHeader("Location", `/requests/${result.id}`).setHeader("Preference-Applied", "respond-async");
  res.json({ requestId: result.id, status: result.state });
}

/** Safe methods (RFC 9110 §9.2.1): only these are ever sent twice. */
const SAFE = new Set(["GET", "HEAD"]);

/**
 * Shadow mode: the client gets the HTTP answer, as before the migration; safe requests also go over XMPP,
 * and the two answers are compared after the fact. Unsafe requests are never duplicated (a device must not
 * switch a bulb twice): they go over HTTP only.
 */
async function inShadow(deps: DeviceRouteDeps, route: DeviceRoute, address: DeviceAddress, timeoutMs: number, req: Request, res: Response): Promise<void> {
  const f = facts(res);
  const call = { resource: address.resource, timeoutMs, requestId: f.requestId };
  if (!SAFE.has(req.method)) {
    await deps.delivery.proxy(route, req, res, call);
    return;
  }
  const body = await readBody(req, deps.maxBodyBytes);
  const overXmppToo: Promise<Side> = deps.delivery
    .deliver({ ...route, transport: "xmpp" }, toDeviceRequest(req, address.resource, body, f.requestId), timeoutMs)
    .then(answerOfReply, (err: unknown) => ({ error: isGatewayError(err) ? err.code : "GW_INTERNAL" }));
  let observed: Promise<Answer | undefined> | undefined;
  await deps.delivery.proxy(route, req, res, { ...call, body, observe: (response) => (observed = observeAnswer(response)) });
  // Compared once both are in; the client already has its answer. Nothing of it may reject unhandled: a
  // failure here is the comparison's, never the request's (the catch is the last word).
  void Promise.all([observed, overXmppToo])
    .then(([http, xmpp]) => (http ? deps.shadow.record(route.deviceId, f.requestId, http, xmpp) : undefined))
    .catch(() => undefined);
}
