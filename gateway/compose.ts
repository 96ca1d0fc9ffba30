import { Registry } from "prom-client";
import { Tracing, type TracerProvider } from "../lib/tracing/tracing.js";
import type { Config } from "./config.js";
import type { PendingExchanges } from "./correlation/pending.js";
import type { PresenceLookup } from "./http/routes/admin.js";
import type { HttpServer } from "./http/server.js";
import type { Lifecycle } from "./lifecycle.js";
import type { Logger } from "./log.js";
import { createMetrics, type Metrics } from "./metrics/metrics.js";
import type { HttpPassThrough } from "./proxy/pass-through.js";
import type { RedisStore } from "./redis/client.js";
import type { CachedRegistry } from "./registry/cached-registry.js";
import type { RedisDeviceRegistry } from "./registry/redis-registry.js";
import { deviceJid } from "./registry/resolver.js";
import { GATEWAY_SERVICE_NAME } from "./settings.js";
import { gatewayVersion } from "./version.js";
import { buildDelivery } from "./wiring/delivery.js";
import { buildHttp } from "./wiring/http.js";
import { buildLimits } from "./wiring/limits.js";
import { Phases, runInPhases } from "./wiring/phases.js";
import type { SlotReuse } from "./limits/slot-reuse.js";
import { buildStores } from "./wiring/stores.js";
import { buildWaves } from "./wiring/waves.js";
import { buildXmpp } from "./wiring/xmpp.js";
import type { XmppComponent } from "./xmpp/component.js";
import type { XmppExchanger } from "./xmpp/exchange.js";

export interface Gateway extends Lifecycle {
  readonly http: HttpServer;
  /** The metrics listener, when GATEWAY_METRICS_PORT is set. */
  readonly metricsHttp: HttpServer | undefined;
  readonly metrics: Metrics;
  readonly pending: PendingExchanges;
  /** XEP-0332 exchanges of this instance, with the chunked reply bodies being received (`exchanger.streams`). */
  readonly exchanger: XmppExchanger;
  readonly component: XmppComponent;
  readonly redis: RedisStore;
  readonly registry: RedisDeviceRegistry;
  /** What device requests read the registry through (GATEWAY_REGISTRY_CACHE_MS). */
  readonly registryCache: CachedRegistry;
  /** Devices' in-flight slots as this instance lends them again (GATEWAY_DEVICE_SLOT_REUSE_MS). */
  readonly slots: SlotReuse;
  /** The HTTP pass-through: its connections and exchanges in flight (for tests and diagnostics). */
  readonly passThrough: HttpPassThrough;
}

/** What a gateway may be given besides its configuration. */
export interface GatewayOptions {
  /**
   * Where spans go (README, "Tracing"): the entry point's SDK provider when the OTEL_ variables turn tracing
   * on, a test's own otherwise; without one, nothing is traced and no request pays for tracing.
   */
  tracerProvider?: TracerProvider;
}

/**
 * The composition root: metrics, then the Redis side, the instance's limits, the XMPP side, delivery, the
 * migration waves and the HTTP side (gateway/wiring/, one file each), then their start and stop order
 * (wiring/phases.ts). Every dependency is handed over at construction; nothing here is global, so several
 * gateways can run in one process (tests do).
 */
export function createGateway(config: Config, baseLogger: Logger, options: GatewayOptions = {}): Gateway {
  // Every line of this instance says which instance wrote it.
  const logger = baseLogger.child({ instance: config.instanceId });
  const tracing = options.tracerProvider
    ? new Tracing(options.tracerProvider, { name: GATEWAY_SERVICE_NAME, version: gatewayVersion() })
    : undefined;
  // Read at scrape time, from the parts built below.
  const metrics = createMetrics(
    new Registry(),
    {
      devicesOnline: () => stores.presence.countOnline(),
      devicesByTransport: () => stores.migration.byTransport(),
      iqInflight: () => xmpp.pending.size,
      requestsInFlight: () => limits.cap.size,
      deviceQueueWaiting: () => limits.deviceQueue.size,
      bufferedBytes: () => limits.budget.held,
      proxyConnections: () => delivery.passThrough.connections(),
      registryCacheLookups: () => stores.registryCache.lookups,
      deviceSlots: () => limits.slots.counts,
      correlationRecords: () => xmpp.store.counts,
      migrationWaves: () => stores.waves.counts(),
    },
    gatewayVersion(),
  );
  const stores = buildStores(config, logger, metrics);
  const limits = buildLimits(config, logger, metrics, stores.redis);
  const xmpp = buildXmpp(config, logger, metrics, stores, {
    budget: limits.budget,
    onAvailable: (jid) => delivery.deliverQueued(jid),
    tracing,
  });
  const delivery = buildDelivery(config, logger, metrics, stores, limits, xmpp.exchanger);
  /** Presence as the admin API and the waves ask for it: one device, or many entries at hand at once. */
  const presence: Required<PresenceLookup> = {
    isOnline: async (id) => {
      const state = await stores.presence.state((await delivery.delivery.route(id)).jid);
      return state === "unknown" ? null : state === "online";
    },
    // Listed entries are at hand: their JIDs need no registry read; the presence reads go out together.
    areOnline: (records) =>
      Promise.all(records.map(async (r) => (await stores.presence.state(deviceJid(r, config.devices.jidTemplate))) === "online")),
  };
  const waves = buildWaves(config, logger, metrics, stores, { areOnline: (records) => presence.areOnline(records) });
  const phases = new Phases();
  const http = buildHttp(config, logger, metrics, {
    stores,
    limits,
    delivery,
    component: xmpp.component,
    phases,
    waves,
    presence,
    tracing,
  });
  const { pipeline } = delivery.delivery;
  const lifecycle = runInPhases(phases, logger, {
    start: [() => stores.start(), () => limits.start(), () => waves.start(), () => xmpp.start(), () => http.start()],
    drain: {
      graceMs: config.drainGraceMs,
      boundMs: config.drainTimeoutMs,
      settleMs: config.redis.commandTimeoutMs * 2,
      requests: () => http.server.stop(),
      detached: () => pipeline.idle(),
      left: () => ({ inFlight: xmpp.pending.size, detached: pipeline.detachedCount }),
      // Exchanges sent end "outcome unknown", waiting ones are not sent, and the pass-through's are cancelled
      // (else a hung device holds the stop).
      atBound: [() => xmpp.shutDown(), () => limits.failWaiting(), () => delivery.stop()],
    },
    stop: [
      () => http.stopMetrics(),
      () => delivery.stop(),
      () => xmpp.stop(),
      () => waves.stop(),
      () => limits.stop(),
      () => stores.stop(),
    ],
  });
  const { component, pending, exchanger } = xmpp;
  const { redis, registry, registryCache } = stores;
  return {
    http: http.server,
    metricsHttp: http.metricsServer,
    metrics,
    pending,
    exchanger,
    component,
    redis,
    registry,
    registryCache,
    slots: limits.slots,
    passThrough: delivery.passThrough,
    ...lifecycle,
  };
}
