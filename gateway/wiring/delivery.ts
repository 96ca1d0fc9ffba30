import type { Config } from "../config.js";
import { Delivery } from "../delivery/deliver.js";
import { DeviceSlot } from "../delivery/device-slot.js";
import { IdempotencyStore } from "../delivery/idempotency.js";
import { OfflineQueue } from "../delivery/offline-queue.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { HttpPassThrough } from "../proxy/pass-through.js";
import { RegistryResolver } from "../registry/resolver.js";
import { MAX_IN_FLIGHT } from "../registry/validate.js";
import type { XmppExchanger } from "../xmpp/exchange.js";
import type { Limits } from "./limits.js";
import type { Stores } from "./stores.js";

/** Delivery: the one entry of device requests (route, deadline, transport), and the HTTP pass-through. */
export function buildDelivery(config: Config, logger: Logger, metrics: Metrics, stores: Stores, limits: Limits, exchanger: XmppExchanger) {
  // The registry as the hot path reads it: through this instance's cache (GATEWAY_REGISTRY_CACHE_MS).
  const { redis, registryCache: registry } = stores;
  // Per device origin, as many connections as the registry may allow a device (MAX_IN_FLIGHT.max): the
  // device's slots (DeviceQueue) are the one limit, not a second, smaller queue inside the agent.
  const passThrough = new HttpPassThrough({ maxBodyBytes: config.http.maxBodyBytes, keepAliveMaxSockets: MAX_IN_FLIGHT.max }, { metrics });
  const delivery = new Delivery({
    resolver: new RegistryResolver(registry, { ...config.devices, timeoutMs: config.exchange.timeoutMs }),
    slot: new DeviceSlot({ queue: limits.deviceQueue, xmpp: exchanger, http: passThrough }),
    shadow: stores.shadow,
    pipeline: {
      idempotency: new IdempotencyStore(redis, config.requests.idempotencyTtlMs),
      asyncRequests: stores.asyncRequests,
      queue: new OfflineQueue(redis, logger, config.requests.queue),
      presence: stores.presence,
      isRegistered: async (deviceId) => (await registry.get(deviceId)) !== undefined,
      queueTtlMs: config.requests.queueTtlMs,
      maxReplyBytes: config.exchange.maxReplyBytes,
      logger,
    },
  });
  return {
    delivery,
    passThrough,
    /** A device that came online gets what waited for it, in order. */
    deliverQueued(jid: string): void {
      delivery
        .deliverQueued(jid)
        .catch((err: unknown) =>
          logger.warn({ event: "queue-drain-failed", jid, err: (err as Error).message }, "offline queue not drained"),
        );
    },
    stop: () => passThrough.stop(),
  };
}

export type DeliverySide = ReturnType<typeof buildDelivery>;
