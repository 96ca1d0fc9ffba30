import type { NextFunction, Request, RequestHandler, Response } from "express";
import { clientHangUp, type DeviceDelivery } from "../../delivery/deliver.js";
import type { DevicePipeline } from "../../delivery/pipeline.js";
import { isGatewayError } from "../../errors.js";
import type { Admission } from "../../limits/admission.js";
import type { ByteBudget, Reservation } from "../../limits/byte-budget.js";
import type { DeviceResolver, DeviceRoute } from "../../registry/resolver.js";
import { readBody } from "../body.js";
import { facts } from "../context.js";
import type { DeviceAddress } from "../device-address.js";
import { deadlineMs, prefersAsync, toDeviceRequest, writeDeviceResponse } from "../device-exchange.js";
import { sendError } from "../error-response.js";
import { UNSAFE_METHODS } from "../../delivery/idempotency.js";
import { answerOfReply, observeAnswer, type Answer, type ShadowComparisons, type Side } from "../../delivery/shadow.js";

/** Which device a request is for, if any (README, "Device requests": path, Host or forward-proxy addressing). */
export interface Addressing {
  address(req: Request): Promise<DeviceAddress | undefined>;
}

export interface DeviceRouteDeps {
  addressing: Addressing;
  resolver: DeviceResolver;
  pipeline: Pick<DevicePipeline, "handle" | "passThrough">;
  delivery: Pick<DeviceDelivery, "proxy" | "deliver">;
  shadow: Pick<ShadowComparisons, "record">;
  /** The instance's in-flight ceiling and the per-client rate limit, passed before any device work. */
  admission: Pick<Admission, "admit">;
  maxBodyBytes: number;
  /** The instance's GATEWAY_MAX_BUFFERED_BYTES: bodies read into memory reserve their bytes in it. */
  budget?: ByteBudget;
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
      await overHttp(deps, route, address, timeoutMs, req, res);
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
    // The rest of the body is not wanted: close, after a linger that lets a client still sending read this (linger.ts).
    if (err.code === "GW_PAYLOAD_TOO_LARGE") res.setHeader("Connection", "close");
    sendError(res, err);
  }
}

async function overXmpp(deps: DeviceRouteDeps, route: DeviceRoute, address: DeviceAddress, timeoutMs: number, req: Request, res: Response): Promise<void> {
  const f = facts(res);
  const respondAsync = prefersAsync(req);
  // The body's bytes are held until the response is over, or, for an accepted asynchronous request, until
  // the pipeline's delivery of it ends (it releases them then).
  let handedOver = false;
  const held = holdUntilClosed(deps, res, () => handedOver);
  const body = await readBody(req, deps.maxBodyBytes, held);
  const idempotencyKey = req.get("idempotency-key");
  const result = await deps.pipeline.handle({
    route,
    message: toDeviceRequest(req, address.resource, body, f.requestId),
    respondAsync,
    maxTimeoutMs: timeoutMs,
    // Not for Prefer: respond-async: its client is answered at once, and its request waits regardless.
    ...(respondAsync ? {} : { signal: clientHangUp(res) }),
    ...(idempotencyKey ? { idempotencyKey } : {}),
    ...(respondAsync && held ? { held } : {}),
    // During a migration, an XMPP device that is offline may still answer at its legacy address; its
    // Idempotency-Key stays held across both attempts, and keeps the HTTP answer for retries.
    fallbackOverHttp: route.fallback === "http",
  });
  handedOver = result.kind === "accepted";
  if (result.kind === "fallback") {
    f.transport = "http";
    const call = { resource: address.resource, timeoutMs, requestId: f.requestId, body };
    const overHttp = await result.overHttp((observe) => deps.delivery.proxy(route, req, res, observe ? { ...call, observe } : call));
    if (overHttp.kind === "replay") writeDeviceResponse(req, res, overHttp.reply);
    return;
  }
  if (result.kind === "reply") {
    writeDeviceResponse(req, res, result.reply);
    return;
  }
  res.status(202).setHeader("Location", `/requests/${result.id}`).setHeader("Preference-Applied", "respond-async");
  res.json({ requestId: result.id, status: result.state });
}

/**
 * Over the HTTP pass-through, streamed both ways; a request with an Idempotency-Key and an unsafe method
 * (RFC 9110 §9.2.2) is read first (within GATEWAY_MAX_BODY_BYTES) for its key's fingerprint, and runs at
 * most once per key, as over XMPP (README, "Idempotency-Key").
 */
async function overHttp(deps: DeviceRouteDeps, route: DeviceRoute, address: DeviceAddress, timeoutMs: number, req: Request, res: Response): Promise<void> {
  const f = facts(res);
  const call = { resource: address.resource, timeoutMs, requestId: f.requestId };
  const idempotencyKey = req.get("idempotency-key");
  if (!idempotencyKey || !UNSAFE_METHODS.has(req.method)) {
    await deps.delivery.proxy(route, req, res, call);
    return;
  }
  // Read whole for the key's fingerprint: held in the memory budget until the response is over.
  const body = await readBody(req, deps.maxBodyBytes, holdUntilClosed(deps, res, () => false));
  const result = await deps.pipeline.passThrough(
    { route, message: toDeviceRequest(req, address.resource, body, f.requestId), timeoutMs, idempotencyKey },
    (observe) => deps.delivery.proxy(route, req, res, { ...call, body, ...(observe ? { observe } : {}) }),
  );
  if (result.kind === "replay") writeDeviceResponse(req, res, result.reply);
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
    await overHttp(deps, route, address, timeoutMs, req, res);
    return;
  }
  const body = await readBody(req, deps.maxBodyBytes, holdUntilClosed(deps, res, () => false));
  let observed: Promise<Answer | undefined> | undefined;
  const answered = deps.delivery.proxy(route, req, res, { ...call, body, observe: (response) => (observed = observeAnswer(response)) });
  // Asked for after the client's own exchange: both take one of the device's slots, and the queue is first
  // come first served, so with the device at its maxInFlight the copy waits for the client's answer, never
  // the client for the copy.
  const overXmppToo: Promise<Side> = deps.delivery
    .deliver({ ...route, transport: "xmpp" }, toDeviceRequest(req, address.resource, body, f.requestId), timeoutMs)
    .then(answerOfReply, (err: unknown) => ({ error: isGatewayError(err) ? err.code : "GW_INTERNAL" }));
  await answered;
  // Compared once both are in; the client already has its answer. Nothing of it may reject unhandled: a
  // failure here is the comparison's, never the request's (the catch is the last word).
  void Promise.all([observed, overXmppToo])
    .then(([http, xmpp]) => (http ? deps.shadow.record(route.deviceId, f.requestId, http, xmpp) : undefined))
    .catch(() => undefined);
}

/** A reservation in the instance's byte budget, released when the response is over (unless handed over). */
function holdUntilClosed(deps: DeviceRouteDeps, res: Response, handedOver: () => boolean): Reservation | undefined {
  const held = deps.budget?.open();
  if (held) res.once("close", () => {
    if (!handedOver()) held.release();
  });
  return held;
}
