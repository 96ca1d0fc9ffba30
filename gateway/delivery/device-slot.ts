import type { IncomingMessage, ServerResponse } from "node:http";
import type { HttpRequestMessage, HttpResponseMessage } from "../../lib/xep0332/message.js";
import { GatewayError, toGatewayError } from "../errors.js";
import { whenClosed } from "../../lib/http/response-end.js";
import type { DeviceQueue, HangUpSignal } from "../limits/device-queue.js";
import type { PassThroughTarget } from "../proxy/exchange.js";
import type { DeviceRoute } from "../registry/resolver.js";
import { ATTR } from "../../lib/tracing/attributes.js";
import type { TraceSpan } from "../../lib/tracing/tracing.js";
import { traced } from "../tracing/traced.js";

/**
 * The XMPP side (XmppExchanger): an exchange prepared before the slot is asked for (refused at once, with no
 * slot taken, when nothing may be sent), sent once it is held.
 */
export interface Exchanger {
  prepare(req: {
    deviceId: string;
    jid: string;
    message: HttpRequestMessage;
    timeoutMs: number;
    trace?: TraceSpan | undefined;
  }): SlotWork<HttpResponseMessage>;
}

/** What runs once a device's slot is held, with what is left of the request's deadline. */
interface SlotWork<T> {
  send(remainingMs: number): Promise<T>;
  /** No slot came (the wait failed): the work is never sent. */
  cancel?(err: unknown): void;
}

/** A pass-through call as the slot takes it: the device's address comes from its route, the time left from its slot. */
export type ProxyCall = Omit<PassThroughTarget, "httpTarget">;

/** The HTTP pass-through (gateway/proxy): streams a client request to a device's legacy address and back. */
export interface PassThrough {
  forward(req: IncomingMessage, res: ServerResponse, target: PassThroughTarget, bufferedBody?: Buffer): Promise<void>;
}

/**
 * One request to one device, over its transport, holding one of the device's in-flight slots. Both paths
 * share one contract (DeviceQueue): beyond maxInFlight a request waits its turn within its deadline (504
 * GW_DEVICE_QUEUE_TIMEOUT when none came free), and only a full queue answers 429 GW_DEVICE_BUSY. Time
 * spent waiting counts against the request's deadline. Whether the device is connected is not decided from
 * the presence kept in Redis: that record goes stale (announcements bounce while the component
 * reconnects), whereas the XMPP server answers an IQ to a device without a session at once, with
 * authority (503).
 */
export class DeviceSlot {
  constructor(private readonly deps: { queue: Pick<DeviceQueue, "acquire">; xmpp: Exchanger; http: PassThrough }) {}

  /**
   * Over XMPP (XEP-0332), with the body read beforehand. `signal`: the client hung up (a request still
   * waiting for a slot leaves the queue; one sent is carried to its end). `trace`: the request's span, when
   * the instance traces (the exchange's span and the slot's are its children).
   */
  overXmpp(
    route: DeviceRoute,
    message: HttpRequestMessage,
    timeoutMs: number,
    signal?: HangUpSignal,
    trace?: TraceSpan,
  ): Promise<HttpResponseMessage> {
    if (route.transport !== "xmpp")
      return Promise.reject(new GatewayError("GW_INTERNAL", { message: `overXmpp() is the XMPP path, not ${route.transport}` }));
    let prepared: SlotWork<HttpResponseMessage>;
    try {
      // Prepared first: a request that cannot be sent now (shutting down, XMPP away) takes no slot.
      prepared = this.deps.xmpp.prepare({ deviceId: route.deviceId, jid: route.jid, message, timeoutMs, trace });
    } catch (err) {
      return Promise.reject(toGatewayError(err));
    }
    return this.withSlot(route, { timeoutMs, signal }, prepared, trace);
  }

  /**
   * Over HTTP to the device's legacy address from the registry (never from the request), streamed; `body`
   * when it was read already (fallback, shadow, Idempotency-Key), else it streams from the request.
   */
  overHttp(route: DeviceRoute, req: IncomingMessage, res: ServerResponse, call: ProxyCall, body?: Buffer): Promise<void> {
    const httpTarget = route.httpTarget;
    if (!httpTarget)
      return Promise.reject(new GatewayError("GW_UPSTREAM_UNREACHABLE", { message: "device has no httpTarget in the registry" }));
    return this.withSlot(
      route,
      { timeoutMs: call.timeoutMs, signal: clientHangUp(res) },
      new PassThroughWork(this.deps.http, req, res, call, httpTarget, body),
      call.trace,
    );
  }

  /**
   * A promise chain rather than an async function: with thousands of requests held at once, every suspended
   * async frame on the way down is memory held per request (and so is every link of the chain: the work's
   * cancel rides on the slot's own link rather than on one of its own). With a trace, the wait for the slot
   * is a span of its own (`device slot`), ended once the slot is held or the wait failed.
   */
  private withSlot<T>(
    route: DeviceRoute,
    wait: Parameters<DeviceQueue["acquire"]>[2],
    work: SlotWork<T>,
    trace: TraceSpan | undefined,
  ): Promise<T> {
    const acquired = this.deps.queue.acquire(route.deviceId, route.maxInFlight, wait);
    return (trace ? traced(trace.child("device slot", "internal", { [ATTR.deviceId]: route.deviceId }), acquired) : acquired).then(
      ({ release, remainingMs }) => {
        let sent: Promise<T>;
        try {
          sent = work.send(remainingMs);
        } catch (err) {
          release();
          throw err;
        }
        // The slot goes back as the work ends, before its caller sees the outcome (this reaction is on the
        // work's promise ahead of the caller's). Not `.finally`: that holds a promise, a reaction, two
        // closures and their context per request for as long as it waits; this, a reaction and a promise.
        sent.then(release, release);
        return sent;
      },
      // Only for work that has something to cancel: the handler would otherwise be one more closure per request.
      work.cancel
        ? (err: unknown) => {
            work.cancel?.(err);
            throw err;
          }
        : undefined,
    );
  }
}

/**
 * The pass-through's work once the device's slot is held. A class, as the prepared XMPP exchange is: a
 * request waiting for its slot holds this one object, not a closure and its context.
 */
class PassThroughWork implements SlotWork<void> {
  constructor(
    private readonly http: PassThrough,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly call: ProxyCall,
    private readonly httpTarget: string,
    private readonly body: Buffer | undefined,
  ) {}

  send(remainingMs: number): Promise<void> {
    return this.http.forward(this.req, this.res, { ...this.call, httpTarget: this.httpTarget, timeoutMs: remainingMs }, this.body);
  }
}

/**
 * Aborted when the client's connection closes before the response is over (a response that finished also
 * emits `close`: that is no hang-up). Not an AbortController: one per request, with its EventTarget and the
 * DOMException an abort builds, only for the rare request that waits for a slot while its client leaves.
 */
export function clientHangUp(res: ServerResponse): HangUpSignal {
  return new ClientHangUp(res);
}

/**
 * A class rather than an object of closures: its methods are shared, so a request held for its device's
 * answer keeps one small object and one `close` callback for it.
 */
class ClientHangUp implements HangUpSignal {
  private hungUp: boolean;
  private listeners: Set<() => void> | undefined;

  constructor(res: ServerResponse) {
    this.hungUp = res.writableEnded || res.destroyed;
    if (!this.hungUp)
      whenClosed(res, () => {
        if (res.writableFinished) return;
        this.hungUp = true;
        if (this.listeners) for (const listener of this.listeners) listener();
      });
  }

  get aborted(): boolean {
    return this.hungUp;
  }

  addEventListener(_type: "abort", listener: () => void): void {
    (this.listeners ??= new Set()).add(listener);
  }

  removeEventListener(_type: "abort", listener: () => void): void {
    this.listeners?.delete(listener);
  }
}
