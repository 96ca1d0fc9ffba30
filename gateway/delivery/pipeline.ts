import type { IncomingMessage } from "node:http";
import type { TraceSpan } from "../../lib/tracing/tracing.js";
import type { HttpRequestMessage, HttpResponseMessage } from "../../lib/xep0332/message.js";
import { GatewayError, isGatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { DeviceRoute } from "../registry/resolver.js";
import type { AsyncRequests } from "./async-requests.js";
import type { PresenceStore } from "../presence/presence-store.js";
import type { DeviceSlot } from "./device-slot.js";
import type { HangUpSignal } from "../limits/device-queue.js";
import { requestIdOf } from "../messages/device-messages.js";
import { IdempotencyStore, RUNNING_GRACE_MS, UNSAFE_METHODS } from "./idempotency.js";
import { messageOf, toQueued, type OfflineQueue, type QueuedRequest } from "./offline-queue.js";
import { captureReply } from "./capture-reply.js";
import { retryWhileStoreAway } from "./store-retry.js";
import { deviceWasReached, errorOf, replyOf, storeError, storeReply, type StoredOutcome } from "./stored-outcome.js";

export interface DeviceRequest {
  route: DeviceRoute;
  message: HttpRequestMessage;
  /** The gateway's request id (for logs). */
  requestId: string;
  /** The request's deadline, from now (the route's, or the client's X-Gateway-Timeout when shorter). */
  timeoutMs: number;
  respondAsync: boolean;
  idempotencyKey?: string;
  /** The client hung up: a request still waiting for a device slot leaves the queue. */
  signal?: HangUpSignal;
  /**
   * The body's bytes in the instance's memory budget: an accepted asynchronous request keeps them until its
   * delivery ends (then they are released here; queued requests wait in Redis, not in memory).
   */
  held?: { release(): void };
  /**
   * The route has `fallback: "http"`: an XMPP attempt that finds the device offline ends in a "fallback"
   * result instead of GW_DEVICE_OFFLINE, its Idempotency-Key still held for the HTTP attempt.
   */
  fallbackOverHttp?: boolean;
  /** The request's SERVER span, when the instance traces: the exchange's span is its child. */
  trace?: TraceSpan | undefined;
}

/** A request for the HTTP pass-through, as the pipeline sees it: for its Idempotency-Key only. */
export interface PassThroughRequest {
  route: DeviceRoute;
  /** Method, resource and body (read beforehand): what the key's fingerprint is over. */
  message: HttpRequestMessage;
  requestId: string;
  timeoutMs: number;
  idempotencyKey?: string;
}

/**
 * Runs the pass-through, streaming the device's answer to the client; `observe`, when given, is to be
 * handed to it (ProxyCall.observe) so that the answer is kept for retries.
 */
export type ForwardOverHttp = (observe?: (response: IncomingMessage) => void) => Promise<void>;

/** How a pass-through ended: forwarded (the client has the device's answer), or a kept answer to replay. */
export type PassThroughResult = { kind: "forwarded" } | { kind: "replay"; reply: HttpResponseMessage };

/** A request that holds an Idempotency-Key: what its key's entry is found by, and which request it is for logs. */
interface KeyedRequest {
  deviceId: string;
  key: string;
  fingerprint: string;
  requestId: string | undefined;
}

/**
 * A pass-through that failed, as its key keeps it. The instance's drain cancels pass-through exchanges
 * (GW_SHUTTING_DOWN) whether or not the request went out already: unlike over XMPP, where an exchange
 * cancelled by the drain was sent, nothing tells the two apart here, so it is "outcome unknown", which
 * keeps the key, for the client too.
 */
function passThroughFailure(err: unknown): GatewayError {
  const failure = isGatewayError(err) ? err : new GatewayError("GW_INTERNAL", { cause: err });
  if (failure.code !== "GW_SHUTTING_DOWN") return failure;
  return new GatewayError("GW_OUTCOME_UNKNOWN", {
    message: "the gateway instance shut down during the HTTP pass-through: whether the device acted is unknown",
  });
}

/** One function for every reply (not a closure made per request: see unkeyed()). */
const asReply = (reply: HttpResponseMessage): PipelineResult => ({ kind: "reply", reply });

/** The XMPP attempt found the device offline, and the route has `fallback: "http"`. */
function fallsBack(req: DeviceRequest, err: unknown): boolean {
  return req.fallbackOverHttp === true && isGatewayError(err) && err.code === "GW_DEVICE_OFFLINE";
}

export type PipelineResult =
  | { kind: "reply"; reply: HttpResponseMessage }
  | { kind: "accepted"; id: string; state: "pending" }
  /** Offline over XMPP with `fallbackOverHttp`: go on over HTTP through `overHttp`, which settles the key. */
  | { kind: "fallback"; overHttp: (forward: ForwardOverHttp) => Promise<PassThroughResult> };

export interface PipelineDeps {
  /** The device's route: the delivery entry's one way to it (Delivery.route). */
  resolve: (deviceId: string) => Promise<DeviceRoute>;
  slot: Pick<DeviceSlot, "overXmpp">;
  idempotency: IdempotencyStore;
  asyncRequests: AsyncRequests;
  queue: OfflineQueue;
  presence: Pick<PresenceStore, "state" | "everSeen">;
  /** Whether the device has a registry entry (else its route is DEFAULT_TRANSPORT's, for any id at all). */
  isRegistered: (deviceId: string) => Promise<boolean>;
  /** How long an asynchronous request may wait for an offline device. */
  queueTtlMs: number;
  /** GATEWAY_MAX_REPLY_BYTES: the largest pass-through answer kept for the retries of a keyed request. */
  maxReplyBytes: number;
  logger: Logger;
}

/**
 * What happens to a device request after it was read: route it, honour Idempotency-Key, and either deliver
 * it now or accept it for later (Prefer: respond-async), queueing it while the device is offline.
 */
export class DevicePipeline {
  private readonly log: Logger;
  /** Deliveries running detached from any HTTP request (accepted asynchronous ones, queue drains). */
  private readonly detached = new Set<Promise<unknown>>();

  constructor(private readonly deps: PipelineDeps) {
    this.log = deps.logger.child({ component: "pipeline" });
  }

  async handle(req: DeviceRequest): Promise<PipelineResult> {
    const { route, timeoutMs } = req;
    const deadline = Date.now() + timeoutMs;
    const key = req.idempotencyKey && UNSAFE_METHODS.has(req.message.method) ? req.idempotencyKey : undefined;
    const fingerprint = key ? IdempotencyStore.fingerprint(req.message) : "";
    if (key) {
      const begun = await this.deps.idempotency.begin(route.deviceId, key, fingerprint, deadline);
      if (begun.state === "done") return { kind: "reply", reply: this.replay(begun.outcome) };
    }
    const idem: KeyedRequest | undefined = key ? { deviceId: route.deviceId, key, fingerprint, requestId: req.requestId } : undefined;
    if (!idem && !req.respondAsync) return this.unkeyed(req, deadline);
    const settle = (outcome: StoredOutcome) => this.settleIdempotency(idem, outcome, deadline);

    if (req.respondAsync) return this.accept(route, req.message, timeoutMs, idem, settle, req.held, req.trace);
    try {
      const reply = await this.deps.slot.overXmpp(route, req.message, timeoutMs, req.signal, req.trace);
      await settle(storeReply(reply));
      return { kind: "reply", reply };
    } catch (err) {
      // The XMPP attempt did not reach the device, the HTTP one will: the key stays held for it (freeing it
      // here would let a retry actuate the device again while, or after, the HTTP attempt does).
      if (fallsBack(req, err)) return { kind: "fallback", overHttp: (forward) => this.forwardKept(idem, deadline, forward) };
      await settle(storeError(isGatewayError(err) ? err : new GatewayError("GW_INTERNAL", { cause: err })));
      throw err;
    }
  }

  /**
   * A live request without an Idempotency-Key: nothing of its outcome is kept, so its reply is not copied
   * and encoded for a record (as storeReply does), and no frame of this method waits for it.
   */
  private unkeyed(req: DeviceRequest, deadline: number): Promise<PipelineResult> {
    const reply = this.deps.slot.overXmpp(req.route, req.message, req.timeoutMs, req.signal, req.trace);
    if (!req.fallbackOverHttp) return reply.then(asReply);
    return reply.then(asReply, (err: unknown): PipelineResult => {
      if (fallsBack(req, err)) return { kind: "fallback", overHttp: (forward) => this.forwardKept(undefined, deadline, forward) };
      throw err;
    });
  }

  /**
   * A request over the HTTP pass-through (transport `http`, shadow mode's unsafe requests), with the same
   * Idempotency-Key contract as over XMPP: run at most once per key, the device's answer kept (bounded by
   * GATEWAY_MAX_REPLY_BYTES) and replayed to retries, an error that proves the device was not reached
   * freeing the key.
   */
  async passThrough(req: PassThroughRequest, forward: ForwardOverHttp): Promise<PassThroughResult> {
    const key = req.idempotencyKey && UNSAFE_METHODS.has(req.message.method) ? req.idempotencyKey : undefined;
    if (!key) {
      await forward();
      return { kind: "forwarded" };
    }
    const deadline = Date.now() + req.timeoutMs;
    const fingerprint = IdempotencyStore.fingerprint(req.message);
    const begun = await this.deps.idempotency.begin(req.route.deviceId, key, fingerprint, deadline);
    if (begun.state === "done") return { kind: "replay", reply: this.replay(begun.outcome) };
    return this.forwardKept({ deviceId: req.route.deviceId, key, fingerprint, requestId: req.requestId }, deadline, forward);
  }

  /** Runs the pass-through for a request whose key (if any) this instance holds, and settles the key. */
  private async forwardKept(idem: KeyedRequest | undefined, deadline: number, forward: ForwardOverHttp): Promise<PassThroughResult> {
    if (!idem) {
      await forward();
      return { kind: "forwarded" };
    }
    let captured: Promise<StoredOutcome> | undefined;
    try {
      await forward((response) => void (captured = captureReply(response, this.deps.maxReplyBytes)));
    } catch (err) {
      const failure = passThroughFailure(err);
      await this.settleIdempotency(idem, storeError(failure), deadline);
      throw failure;
    }
    const outcome = captured
      ? await captured
      : storeError(new GatewayError("GW_OUTCOME_UNKNOWN", { message: "the pass-through ended without the device's answer" }));
    await this.settleIdempotency(idem, outcome, deadline);
    return { kind: "forwarded" };
  }

  /** Delivers what waited for a device that just came online (called on its presence). */
  deliverQueued(jid: string): Promise<void> {
    return this.track(this.drainQueue(jid));
  }

  /** How many deliveries run detached from any HTTP request (the drain waits for them). */
  get detachedCount(): number {
    return this.detached.size;
  }

  /**
   * Resolves once no delivery runs detached, those started meanwhile included: the drain (SIGTERM) waits
   * for it as for the HTTP requests in flight, so that an asynchronous request's outcome is stored before
   * the instance goes (README, "Running several instances").
   */
  async idle(): Promise<void> {
    while (this.detached.size > 0) await Promise.allSettled([...this.detached]);
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.detached.add(work);
    const forget = () => this.detached.delete(work);
    work.then(forget, forget);
    return work;
  }

  private async drainQueue(jid: string): Promise<void> {
    await this.deps.queue.drain(
      jid,
      // Over the device's route as it is now (it may have changed while the request waited).
      async (item) => this.completeQueued(item, await this.deps.resolve(item.deviceId)),
      // With its message: an expired request with an Idempotency-Key settles its key too.
      async (item) =>
        this.finishAsync(
          item,
          storeError(new GatewayError("GW_DEVICE_TIMEOUT", { message: "the device did not come online before the request expired" })),
          item.deadline,
        ),
    );
  }

  private async accept(
    route: DeviceRoute,
    message: HttpRequestMessage,
    timeoutMs: number,
    idem: KeyedRequest | undefined,
    settle: (outcome: StoredOutcome) => Promise<void>,
    held: { release(): void } | undefined,
    trace: TraceSpan | undefined,
  ): Promise<PipelineResult> {
    const { asyncRequests } = this.deps;
    const deadline = Date.now() + timeoutMs;
    const id = await asyncRequests.accept(route.deviceId, deadline);
    void this.track(
      this.run(route, message, timeoutMs, trace)
        .then(async (outcome) => {
          // Offline now (the XMPP server bounced it): it waits for the device instead of failing.
          if (outcome.kind === "error" && outcome.code === "GW_DEVICE_OFFLINE")
            return this.enqueue(id, route, message, idem, settle, deadline);
          await this.finishAccepted(id, route.deviceId, outcome, settle, deadline);
        })
        .finally(() => held?.release()),
    );
    return { kind: "accepted", id, state: "pending" };
  }

  private async finishAccepted(
    id: string,
    deviceId: string,
    outcome: StoredOutcome,
    settle: (outcome: StoredOutcome) => Promise<void>,
    deadline: number,
  ): Promise<void> {
    await settle(outcome);
    await this.storeResult(id, deviceId, outcome, deadline);
  }

  private async enqueue(
    id: string,
    route: DeviceRoute,
    message: HttpRequestMessage,
    idem: KeyedRequest | undefined,
    settle: (outcome: StoredOutcome) => Promise<void>,
    deadline: number,
  ): Promise<void> {
    const queuedUntil = Date.now() + this.deps.queueTtlMs;
    try {
      // With DEFAULT_TRANSPORT=xmpp any id has a route: a made-up one would wait in the queue until its TTL,
      // for a device that will never drain it. Only registered devices, or devices seen lately, get a queue.
      if (!(await this.deps.isRegistered(route.deviceId)) && !(await this.deps.presence.everSeen(route.jid))) {
        const notQueued = new GatewayError("GW_DEVICE_OFFLINE", {
          message: "device is not connected, and is neither registered nor seen lately: the request was not queued",
        });
        return await this.finishAccepted(id, route.deviceId, storeError(notQueued), settle, deadline);
      }
      // The key now runs until the queue's deadline and the delivery after it, the result until the queue's
      // deadline (its delivery moves it again); both before the request is queued, so that an instance killed
      // in between never leaves a queued request whose result expires with the first attempt's deadline.
      if (idem) await this.deps.idempotency.extend(idem.deviceId, idem.key, idem.fingerprint, queuedUntil + route.timeoutMs);
      await this.deps.asyncRequests.extend(id, route.deviceId, queuedUntil);
      try {
        await this.deps.queue.enqueue(route.jid, toQueued(id, route.deviceId, queuedUntil, message, idem?.key));
      } catch (err) {
        // No room in the queue: the request ends as offline, its key freed (the device was not reached).
        if (isGatewayError(err) && err.code === "GW_DEVICE_OFFLINE")
          return await this.finishAccepted(id, route.deviceId, storeError(err), settle, queuedUntil);
        throw err;
      }
      // Marked after it is queued, so a refused request never reads "queued".
      await this.deps.asyncRequests.markQueued(id, route.deviceId, queuedUntil);
      // The device may have announced itself between the bounce and the queueing: then nobody else drains.
      if ((await this.deps.presence.state(route.jid)) === "online") await this.deliverQueued(route.jid);
    } catch (err) {
      this.lost(id, err);
    }
  }

  private async completeQueued(item: QueuedRequest, route: DeviceRoute): Promise<void | "stop"> {
    // Its delivery may end past the queue's deadline: the result reads pending until then. One a reader
    // already found expired is not delivered (its client was told 504): it ends with that outcome, key
    // included. With the store away, it is delivered (an unknown is not an expiry).
    const ended = await this.deps.asyncRequests.extend(item.id, item.deviceId, Date.now() + route.timeoutMs).catch(() => undefined);
    if (ended) return this.finishAsync(item, ended, Date.now());
    const outcome = await this.run(route, messageOf(item), route.timeoutMs);
    // Never sent (this instance is past its drain bound): it goes back in the queue, for the next instance
    // the device announces itself to, rather than ending 503; and reads "queued" again, until its deadline.
    if (outcome.kind === "error" && outcome.code === "GW_SHUTTING_DOWN") {
      await this.deps.asyncRequests.markQueued(item.id, item.deviceId, item.deadline).catch((err: unknown) => this.lost(item.id, err));
      return "stop";
    }
    await this.finishAsync(item, outcome, Date.now());
  }

  /** A queued request's end: its key (when it has one) and its result, kept until `deadline` + grace. */
  private async finishAsync(item: QueuedRequest, outcome: StoredOutcome, deadline: number): Promise<void> {
    const message = messageOf(item);
    const idem = item.idempotencyKey
      ? {
          deviceId: item.deviceId,
          key: item.idempotencyKey,
          fingerprint: IdempotencyStore.fingerprint(message),
          requestId: requestIdOf(message),
        }
      : undefined;
    await this.settleIdempotency(idem, outcome, deadline);
    await this.storeResult(item.id, item.deviceId, outcome, deadline);
  }

  /** An asynchronous request's outcome, written again while Redis is away (until `deadline` + grace). */
  private async storeResult(id: string, deviceId: string, outcome: StoredOutcome, deadline: number): Promise<void> {
    await retryWhileStoreAway(() => this.deps.asyncRequests.complete(id, deviceId, outcome), deadline + RUNNING_GRACE_MS).catch(
      (err: unknown) => this.lost(id, err),
    );
  }

  /** Runs a delivery to its end and says how it ended; never throws. */
  private async run(route: DeviceRoute, message: HttpRequestMessage, timeoutMs: number, trace?: TraceSpan): Promise<StoredOutcome> {
    try {
      return storeReply(await this.deps.slot.overXmpp(route, message, timeoutMs, undefined, trace));
    } catch (err) {
      return storeError(isGatewayError(err) ? err : new GatewayError("GW_INTERNAL", { cause: err }));
    }
  }

  /**
   * Keeps an outcome that may have actuated the device as the answer to retries; else frees the key. The
   * client's answer does not wait for a store that is away: the write is tried again in the background
   * until the request's deadline + grace (retries meanwhile get 409), after which the key answers "outcome
   * unknown" (504), never a second actuation.
   */
  private async settleIdempotency(idem: KeyedRequest | undefined, outcome: StoredOutcome, deadline: number): Promise<void> {
    if (!idem) return;
    const { idempotency } = this.deps;
    const write = () =>
      deviceWasReached(outcome)
        ? idempotency.finish(idem.deviceId, idem.key, idem.fingerprint, outcome)
        : idempotency.abandon(idem.deviceId, idem.key, idem.fingerprint);
    const fields = { deviceId: idem.deviceId, requestId: idem.requestId };
    try {
      await write();
    } catch (err) {
      this.log.warn(
        { event: "idempotency-not-recorded", ...fields, err: (err as Error).message },
        "idempotency outcome not recorded yet; retrying",
      );
      void retryWhileStoreAway(write, deadline + RUNNING_GRACE_MS).then(
        () => this.log.info({ event: "idempotency-recorded-late", ...fields }, "idempotency outcome recorded after a retry"),
        (late: unknown) =>
          this.log.warn(
            { event: "idempotency-not-recorded", ...fields, final: true, err: (late as Error).message },
            "idempotency outcome not recorded: retries of this key will answer 504 (outcome unknown)",
          ),
      );
    }
  }

  private replay(outcome: StoredOutcome): HttpResponseMessage {
    if (outcome.kind === "reply") return replyOf(outcome);
    throw errorOf(outcome);
  }

  private lost(id: string, err: unknown): void {
    this.log.error({ event: "async-result-lost", id, err: (err as Error).message }, "asynchronous result could not be stored");
  }
}
