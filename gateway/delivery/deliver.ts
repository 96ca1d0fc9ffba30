import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { isGatewayError } from "../errors.js";
import type { TraceSpan } from "../../lib/tracing/tracing.js";
import { traced } from "../tracing/traced.js";
import type { DeviceResolver, DeviceRoute } from "../registry/resolver.js";
import { clientHangUp, type DeviceSlot, type ProxyCall } from "./device-slot.js";
import { toDeviceRequest, writeHeldAnswer } from "../messages/device-messages.js";
import { UNSAFE_METHODS } from "./idempotency.js";
import { DevicePipeline, type PipelineDeps, type PipelineResult } from "./pipeline.js";
import { answerOfReply, observeAnswer, type Answer, type ShadowComparisons, type Side } from "./shadow.js";

/** A client request for a device, as the HTTP route read it: what the delivery needs, nothing decided yet. */
export interface DeviceCall {
  /** The client's request; its body is still unread. */
  req: IncomingMessage & { method: string };
  res: ServerResponse;
  /** Path and query the device must see, verbatim. */
  resource: string;
  /** The gateway's request id: the device gets it as X-Request-Id, and so does the client. */
  requestId: string;
  /** RFC 7240 `Prefer: respond-async`. */
  respondAsync: boolean;
  idempotencyKey?: string;
  /** Reads the body whole (within GATEWAY_MAX_BODY_BYTES, its bytes held in the memory budget). */
  readBody(): Promise<ReadBody>;
  /** Which transport carries the request (the access log's and the metrics' `transport`). */
  onTransport(transport: DeviceRoute["transport"]): void;
  /** The request's SERVER span, when the instance traces: the parent of the spans of its delivery. */
  trace?: TraceSpan | undefined;
}

/** A body read into memory, held in the instance's budget until the response is over (unless handed over). */
export interface ReadBody {
  body: Buffer;
  held?: { release(): void };
  /** An accepted asynchronous request keeps the bytes until its delivery ends (the pipeline releases them). */
  handOver(): void;
}

/** A device request accepted for later (Prefer: respond-async): its client is answered 202 by the route. */
export interface Accepted {
  kind: "accepted";
  id: string;
  state: "pending";
}

/**
 * How a device request ended for its client: accepted for later, or nothing when it was answered (the
 * device's answer or a replay was written). Nothing rather than an "answered" value: a request held for its
 * device would otherwise keep one more link of its promise chain, only to map the end of the answer to it.
 */
export type Delivered = Accepted | void;

export interface DeliveryDeps {
  resolver: DeviceResolver;
  slot: Pick<DeviceSlot, "overXmpp" | "overHttp">;
  shadow: Pick<ShadowComparisons, "record">;
  /** What the pipeline needs besides the device's route and slot. */
  pipeline: Omit<PipelineDeps, "resolve" | "slot">;
}

/**
 * The one entry of a device request into delivery (README, "Device requests"), live or queued: the device's
 * route is resolved here and only here, the deadline computed once, and the transport chosen: XMPP (through
 * the pipeline: Idempotency-Key, Prefer: respond-async, offline queue), its fallback over HTTP, the HTTP
 * pass-through, or shadow mode. Every device answer is written by messages/device-messages.ts.
 */
export class Delivery {
  /** Idempotency-Key, asynchronous requests and the offline queue (its `idle()` is what the drain waits for). */
  readonly pipeline: DevicePipeline;

  constructor(private readonly deps: DeliveryDeps) {
    this.pipeline = new DevicePipeline({ ...deps.pipeline, slot: deps.slot, resolve: (deviceId) => this.route(deviceId) });
  }

  /** The device's route as the registry says now (the defaults filled in). */
  route(deviceId: string): Promise<DeviceRoute> {
    return this.deps.resolver.resolve(deviceId);
  }

  async deliver(deviceId: string, call: DeviceCall): Promise<Delivered> {
    const route = call.trace
      ? await traced(call.trace.child("registry resolve", "internal"), this.route(deviceId))
      : await this.route(deviceId);
    call.onTransport(route.transport);
    const timeoutMs = deadlineMs(call.req, route.timeoutMs);
    // Each transport's promise is handed on, not awaited here: a request held for its device's answer then
    // keeps no suspended frame of this method (thousands may be held at once).
    if (route.transport === "http") return this.overHttp(route, call, timeoutMs);
    if (route.transport === "shadow") return this.inShadow(route, call, timeoutMs);
    return this.overXmpp(route, call, timeoutMs);
  }

  /** What waited in the offline queue for a device that just came online (called on its presence). */
  deliverQueued(jid: string): Promise<void> {
    return this.pipeline.deliverQueued(jid);
  }

  private async overXmpp(route: DeviceRoute, call: DeviceCall, timeoutMs: number): Promise<Delivered> {
    const { res, respondAsync, idempotencyKey, requestId } = call;
    const read = await call.readBody();
    const handled = this.pipeline.handle({
      route,
      message: toDeviceRequest(call.req, call.resource, read.body, requestId),
      requestId,
      timeoutMs,
      respondAsync,
      // Not for Prefer: respond-async: its client is answered at once, and its request waits regardless.
      ...(respondAsync ? {} : { signal: clientHangUp(res) }),
      ...(idempotencyKey ? { idempotencyKey } : {}),
      ...(respondAsync && read.held ? { held: read.held } : {}),
      trace: call.trace,
      // During a migration, an XMPP device that is offline may still answer at its legacy address; its
      // Idempotency-Key stays held across both attempts, and keeps the HTTP answer for retries.
      fallbackOverHttp: route.fallback === "http",
    });
    // Handed on, not awaited (see deliver()): what waits for the device's answer is this one callback.
    return handled.then((result) => this.answerOverXmpp(route, call, timeoutMs, read, result));
  }

  private async answerOverXmpp(
    route: DeviceRoute,
    call: DeviceCall,
    timeoutMs: number,
    read: ReadBody,
    result: PipelineResult,
  ): Promise<Delivered> {
    const { req, res, requestId } = call;
    if (result.kind === "accepted") {
      read.handOver();
      return result;
    }
    if (result.kind === "fallback") {
      call.onTransport("http");
      const target = proxyCall(call, timeoutMs);
      const overHttp = await result.overHttp((observe) =>
        this.deps.slot.overHttp(route, req, res, observe ? { ...target, observe } : target, read.body),
      );
      if (overHttp.kind === "replay") writeHeldAnswer(req.method, res, overHttp.reply, requestId);
      return;
    }
    writeHeldAnswer(req.method, res, result.reply, requestId);
  }

  /**
   * Over the HTTP pass-through, streamed both ways; a request with an Idempotency-Key and an unsafe method
   * (RFC 9110 §9.2.2) is read first (within GATEWAY_MAX_BODY_BYTES) for its key's fingerprint, and runs at
   * most once per key, as over XMPP (README, "Idempotency-Key").
   */
  private overHttp(route: DeviceRoute, call: DeviceCall, timeoutMs: number): Promise<void> {
    const { req, res, idempotencyKey } = call;
    // The slot's own promise, handed on: an async method here would keep a promise of its own per request.
    if (!idempotencyKey || !UNSAFE_METHODS.has(req.method)) return this.deps.slot.overHttp(route, req, res, proxyCall(call, timeoutMs));
    return this.overHttpOnce(route, call, timeoutMs, idempotencyKey);
  }

  /** overHttp() with an Idempotency-Key on an unsafe method: the body read, then the key's pipeline. */
  private async overHttpOnce(route: DeviceRoute, call: DeviceCall, timeoutMs: number, idempotencyKey: string): Promise<void> {
    const { req, res, requestId } = call;
    const target = proxyCall(call, timeoutMs);
    const { body } = await call.readBody();
    const result = await this.pipeline.passThrough(
      { route, message: toDeviceRequest(req, call.resource, body, requestId), requestId, timeoutMs, idempotencyKey },
      (observe) => this.deps.slot.overHttp(route, req, res, observe ? { ...target, observe } : target, body),
    );
    if (result.kind === "replay") writeHeldAnswer(req.method, res, result.reply, requestId);
  }

  /**
   * Shadow mode: the client gets the HTTP answer, as before the migration; safe requests also go over XMPP,
   * and the two answers are compared after the fact. Unsafe requests are never duplicated (a device must not
   * switch a bulb twice): they go over HTTP only.
   */
  private async inShadow(route: DeviceRoute, call: DeviceCall, timeoutMs: number): Promise<void> {
    const { req, res, requestId } = call;
    if (!SAFE.has(req.method)) {
      await this.overHttp(route, call, timeoutMs);
      return;
    }
    const { body } = await call.readBody();
    let observed: Promise<Answer | undefined> | undefined;
    const answered = this.deps.slot.overHttp(
      route,
      req,
      res,
      { ...proxyCall(call, timeoutMs), observe: (response) => void (observed = observeAnswer(response)) },
      body,
    );
    // Asked for after the client's own exchange: both take one of the device's slots, and the queue is first
    // come first served, so with the device at its maxInFlight the copy waits for the client's answer, never
    // the client for the copy.
    const overXmppToo: Promise<Side> = this.deps.slot
      .overXmpp({ ...route, transport: "xmpp" }, toDeviceRequest(req, call.resource, body, requestId), timeoutMs, undefined, call.trace)
      .then(answerOfReply, (err: unknown) => ({ error: isGatewayError(err) ? err.code : "GW_INTERNAL" }));
    await answered;
    // Compared once both are in; the client already has its answer. Nothing of it may reject unhandled: a
    // failure here is the comparison's, never the request's (the catch is the last word).
    void Promise.all([observed, overXmppToo])
      .then(([http, xmpp]) => (http ? this.deps.shadow.record(route.deviceId, requestId, http, xmpp) : undefined))
      .catch(() => undefined);
  }
}

/** Safe methods (RFC 9110 §9.2.1): the only ones shadow mode sends over both transports. */
const SAFE = new Set(["GET", "HEAD"]);

function proxyCall(call: DeviceCall, timeoutMs: number): ProxyCall {
  return { resource: call.resource, timeoutMs, requestId: call.requestId, trace: call.trace };
}

/**
 * The deadline of one request, computed once: the device's configured one, or shorter when the client says
 * so in `X-Gateway-Timeout` (milliseconds). A client can shorten the wait, never lengthen it.
 */
export function deadlineMs(req: { headers: IncomingHttpHeaders }, configuredMs: number): number {
  const asked = req.headers["x-gateway-timeout"];
  const askedMs = typeof asked === "string" && /^\d{1,9}$/.test(asked) && Number(asked) > 0 ? Number(asked) : undefined;
  return Math.min(configuredMs, askedMs ?? Infinity);
}
