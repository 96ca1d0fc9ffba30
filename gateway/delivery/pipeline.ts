import type { HttpRequestMessage, HttpResponseMessage } from "../../adapters/xep0332/message.js";
import { GatewayError, isGatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { DeviceResolver, DeviceRoute } from "../registry/resolver.js";
import type { AsyncRequests } from "./async-requests.js";
import type { PresenceStore } from "../presence/presence-store.js";
import type { DeviceDelivery } from "./deliver.js";
import { IdempotencyStore, UNSAFE_METHODS } from "./idempotency.js";
import { messageOf, toQueued, type OfflineQueue, type QueuedRequest } from "./offline-queue.js";
import { deviceWasReached, errorOf, replyOf, storeError, storeReply, type StoredOutcome } from "./stored-outcome.js";

export interface DeviceRequest {
  route: DeviceRoute;
  message: HttpRequestMessage;
  /** The client's own deadline (X-Gateway-Timeout), if shorter than the device's. */
  maxTimeoutMs?: number;
  respondAsync: boolean;
  idempotencyKey?: string;
}

export type PipelineResult = { kind: "reply"; reply: HttpResponseMessage } | { kind: "accepted"; id: string; state: "pending" };

export interface PipelineDeps {
  resolver: DeviceResolver;
  delivery: DeviceDelivery;
  idempotency: IdempotencyStore;
  asyncRequests: AsyncRequests;
  queue: OfflineQueue;
  presence: Pick<PresenceStore, "state">;
  /** How long an asynchronous request may wait for an offline device. */
  queueTtlMs: number;
  logger: Logger;
}

/**
 * What happens to a device request after it was read: route it, honour Idempotency-Key, and either deliver
 * it now or accept it for later (Prefer: respond-async), queueing it while the device is offline.
 */
export class DevicePipeline {
  private readonly log: Logger;

  constructor(private readonly deps: PipelineDeps) {
    this.log = deps.logger.child({ component: "pipeline" });
  }

  async handle(req: DeviceRequest): Promise<PipelineResult> {
    const route = req.route;
    const timeoutMs = Math.min(route.timeoutMs, req.maxTimeoutMs ?? Infinity);
    const key = req.idempotencyKey && UNSAFE_METHODS.has(req.message.method) ? req.idempotencyKey : undefined;
    const fingerprint = key ? IdempotencyStore.fingerprint(req.message) : "";
    if (key) {
      const begun = await this.deps.idempotency.begin(route.deviceId, key, fingerprint);
      if (begun.state === "done") return { kind: "reply", reply: this.replay(begun.outcome) };
    }
    const settle = (outcome: StoredOutcome) => this.settleIdempotency(route.deviceId, key, fingerprint, outcome);

    if (req.respondAsync) return this.accept(route, req.message, timeoutMs, key, settle);
    try {
      const reply = await this.deps.delivery.deliver(route, req.message, timeoutMs);
      await settle(storeReply(reply));
      return { kind: "reply", reply };
    } catch (err) {
      await settle(storeError(isGatewayError(err) ? err : new GatewayError("GW_INTERNAL", { cause: err })));
      throw err;
    }
  }

  /** Delivers what waited for a device that just came online (called on its presence). */
  async deliverQueued(jid: string): Promise<void> {
    await this.deps.queue.drain(
      jid,
      async (item) => this.completeQueued(item),
      async (item) => this.finishAsync(item.id, item.deviceId, storeError(new GatewayError("GW_DEVICE_TIMEOUT", { message: "the device did not come online before the request expired" })), item.idempotencyKey),
    );
  }

  private async accept(
    route: DeviceRoute,
    message: HttpRequestMessage,
    timeoutMs: number,
    key: string | undefined,
    settle: (outcome: StoredOutcome) => Promise<void>,
  ): Promise<PipelineResult> {
    const { asyncRequests } = this.deps;
    const id = await asyncRequests.accept(route.deviceId, Date.now() + timeoutMs);
    void this.run(route, message, timeoutMs).then(async (outcome) => {
      // Offline now (the XMPP server bounced it): it waits for the device instead of failing.
      if (outcome.kind === "error" && outcome.code === "GW_DEVICE_OFFLINE") return this.enqueue(id, route, message, key);
      await settle(outcome);
      await asyncRequests.complete(id, route.deviceId, outcome).catch((err: unknown) => this.lost(id, err));
    });
    return { kind: "accepted", id, state: "pending" };
  }

  private async enqueue(id: string, route: DeviceRoute, message: HttpRequestMessage, key: string | undefined): Promise<void> {
    const queuedUntil = Date.now() + this.deps.queueTtlMs;
    try {
      await this.deps.asyncRequests.markQueued(id, route.deviceId, queuedUntil);
      await this.deps.queue.enqueue(route.jid, toQueued(id, route.deviceId, queuedUntil, message, key));
      // The device may have announced itself between the bounce and the queueing: then nobody else drains.
      if ((await this.deps.presence.state(route.jid)) === "online") await this.deliverQueued(route.jid);
    } catch (err) {
      this.lost(id, err);
    }
  }

  private async completeQueued(item: QueuedRequest): Promise<void> {
    const route = await this.deps.resolver.resolve(item.deviceId);
    const outcome = await this.run(route, messageOf(item), route.timeoutMs);
    await this.finishAsync(item.id, item.deviceId, outcome, item.idempotencyKey, messageOf(item));
  }

  private async finishAsync(id: string, deviceId: string, outcome: StoredOutcome, key?: string, message?: HttpRequestMessage): Promise<void> {
    if (key && message) await this.settleIdempotency(deviceId, key, IdempotencyStore.fingerprint(message), outcome);
    await this.deps.asyncRequests.complete(id, deviceId, outcome).catch((err: unknown) => this.lost(id, err));
  }

  /** Runs a delivery to its end and says how it ended; never throws. */
  private async run(route: DeviceRoute, message: HttpRequestMessage, timeoutMs: number): Promise<StoredOutcome> {
    try {
      return storeReply(await this.deps.delivery.deliver(route, message, timeoutMs));
    } catch (err) {
      return storeError(isGatewayError(err) ? err : new GatewayError("GW_INTERNAL", { cause: err }));
    }
  }

  /** Keeps an outcome that may have actuated the device as the answer to retries; else frees the key. */
  private async settleIdempotency(deviceId: string, key: string | undefined, fingerprint: string, outcome: StoredOutcome): Promise<void> {
    if (!key) return;
    const { idempotency } = this.deps;
    try {
      if (deviceWasReached(outcome)) await idempotency.finish(deviceId, key, fingerprint, outcome);
      else await idempotency.abandon(deviceId, key);
    } catch (err) {
      // The key stays "running" until its TTL: retries get 409 rather than a second actuation.
      this.log.warn({ event: "idempotency-not-recorded", deviceId, err: (err as Error).message }, "idempotency outcome not recorded");
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
