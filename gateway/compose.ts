import { Registry } from "prom-client";
import type { Config } from "./config.js";
import { PendingExchanges } from "./correlation/pending.js";
import { ReplyBus } from "./correlation/reply-bus.js";
import { CorrelationStore } from "./correlation/store.js";
import { StreamRoutes } from "./correlation/stream-routes.js";
import { AsyncRequests } from "./delivery/async-requests.js";
import { Delivery } from "./delivery/deliver.js";
import { DeviceSlot } from "./delivery/device-slot.js";
import { IdempotencyStore } from "./delivery/idempotency.js";
import { OfflineQueue } from "./delivery/offline-queue.js";
import { ShadowComparisons } from "./delivery/shadow.js";
import { GatewayError } from "./errors.js";
import { DeviceAddressing } from "./http/addressing.js";
import { createApp, createMetricsApp } from "./http/app.js";
import { HttpServer } from "./http/server.js";
import type { Lifecycle } from "./lifecycle.js";
import type { Logger } from "./log.js";
import { Admission } from "./limits/admission.js";
import { ByteBudget } from "./limits/byte-budget.js";
import { ClientRateLimiter } from "./limits/client-rate-limiter.js";
import { DeviceLimiter } from "./limits/device-limiter.js";
import { DeviceQueue } from "./limits/device-queue.js";
import { SlotNotices } from "./limits/slot-notices.js";
import { InFlightCap } from "./limits/in-flight-cap.js";
import { createMetrics, type Metrics, type MetricSources } from "./metrics/metrics.js";
import { PresenceStore } from "./presence/presence-store.js";
import { HttpPassThrough } from "./proxy/pass-through.js";
import { PresenceTracker } from "./presence/tracker.js";
import { RedisStore } from "./redis/client.js";
import { importDevices, loadDevicesFile } from "./registry/import.js";
import { MigrationView } from "./registry/migration.js";
import { RedisDeviceRegistry } from "./registry/redis-registry.js";
import { RegistryResolver } from "./registry/resolver.js";
import { MAX_IN_FLIGHT } from "./registry/validate.js";
import { gatewayVersion } from "./version.js";
import { XmppComponent } from "./xmpp/component.js";
import { XmppExchanger } from "./xmpp/exchange.js";
import { ReplyRouter } from "./xmpp/reply-router.js";

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

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
  /** The HTTP pass-through: its connections and exchanges in flight (for tests and diagnostics). */
  readonly passThrough: HttpPassThrough;
}

/**
 * The composition root: config → Redis → XMPP component → correlation → HTTP app, each part handed its
 * dependencies explicitly. Nothing here is global, so several gateways can run in one process (tests do).
 */
export function createGateway(config: Config, baseLogger: Logger): Gateway {
  // Every line of this instance says which instance wrote it.
  const logger = baseLogger.child({ instance: config.instanceId });
  const metricSources: MetricSources = {};
  const metrics = createMetrics(new Registry(), metricSources, gatewayVersion());
  const redis = new RedisStore(config.redis, { logger, onReadyChange: (ready) => metrics.redisConnected.set(ready ? 1 : 0) });
  const component = new XmppComponent(config.xmpp, { logger, onOnlineChange: (online) => metrics.xmppConnected.set(online ? 1 : 0) });
  const store = new CorrelationStore(redis);
  const pending = new PendingExchanges({ onTimeout: () => metrics.iqTimeouts.inc() });
  // Request and reply bodies held in memory, all requests together (GATEWAY_MAX_BUFFERED_BYTES).
  metrics.admissionRefusals.inc({ reason: "memory" }, 0);
  const budget = new ByteBudget(config.limits.maxBufferedBytes, { onRefused: () => metrics.admissionRefusals.inc({ reason: "memory" }) });
  metricSources.bufferedBytes = () => budget.held;
  // A reply's body parked as JSON <chunk> elements takes about 4/3 of its bytes (base64): twice the reply
  // limit, plus room for the elements around small bodies, is what one exchange's early chunks may hold.
  const streamRoutes = new StreamRoutes(redis, { parkTtlMs: config.exchange.timeoutMs, maxParked: 4096, maxParkedBytes: 2 * config.exchange.maxReplyBytes + 65536 });
  const exchanger = new XmppExchanger({ component, store, streamRoutes, pending, metrics, logger, instanceId: config.instanceId, limits: config.exchange, budget });
  const bus = new ReplyBus(redis, config.instanceId, logger);
  // A reply routed to another instance's connection as it closed is gone: what may be sent again, is.
  bus.onDeparture((departed) => exchanger.resendUnanswered(departed));
  // This instance's connection closed (stopped, lost, replaced): the others are told, once it is gone.
  let departure: Promise<void> = Promise.resolve();
  component.onClosed(() => {
    departure = bus.announceDeparture().catch((err: unknown) => logger.warn({ event: "departure-not-announced", err: (err as Error).message }, "component departure not announced (Redis unreachable)"));
  });
  // Subscribes itself to the component's stanzas and to the bus.
  const router = new ReplyRouter({ component, bus, exchanger, pending, store, streamRoutes, metrics, instanceId: config.instanceId });
  const registry = new RedisDeviceRegistry(redis);
  const resolver = new RegistryResolver(registry, { ...config.devices, timeoutMs: config.exchange.timeoutMs });

  const presence = new PresenceStore(redis, config.presence);
  const tracker = new PresenceTracker(presence, logger, { registry, jidTemplate: config.devices.jidTemplate });
  component.onStanza((stanza) => tracker.handle(stanza));
  metricSources.devicesOnline = () => presence.countOnline();
  // Per device origin, as many connections as the registry may allow a device (MAX_IN_FLIGHT.max): the
  // device's slots (DeviceQueue) are the one limit, not a second, smaller queue inside the agent.
  const passThrough = new HttpPassThrough({ maxBodyBytes: config.http.maxBodyBytes, keepAliveMaxSockets: MAX_IN_FLIGHT.max }, { metrics });
  metricSources.proxyConnections = () => passThrough.connections();
  const cap = new InFlightCap(config.limits.maxInFlight);
  metricSources.requestsInFlight = () => cap.size;
  const slotNotices = new SlotNotices(redis, config.instanceId, logger);
  const deviceQueue = new DeviceQueue(
    {
      limiter: new DeviceLimiter(redis, { instanceId: config.instanceId, retryAfterS: config.requests.busyRetryAfterS }),
      notices: slotNotices,
      metrics,
    },
    // Waiting requests hold a place in the instance's ceiling, except those of Prefer: respond-async (their
    // client has its 202): the queue bounds its total by the same number itself.
    { maxPerDevice: config.devices.queueMax, maxTotal: config.limits.maxInFlight },
  );
  metricSources.deviceQueueWaiting = () => deviceQueue.size;
  const asyncRequests = new AsyncRequests(redis, config.requests.resultTtlMs);
  const shadow = new ShadowComparisons(redis, metrics, logger);
  const migration = new MigrationView({ registry, presence, shadow });
  metricSources.devicesByTransport = () => migration.byTransport();
  const delivery = new Delivery({
    resolver,
    slot: new DeviceSlot({ queue: deviceQueue, xmpp: exchanger, http: passThrough }),
    shadow,
    pipeline: {
      idempotency: new IdempotencyStore(redis, config.requests.idempotencyTtlMs),
      asyncRequests,
      queue: new OfflineQueue(redis, logger, config.requests.queue),
      presence,
      isRegistered: async (deviceId) => (await registry.get(deviceId)) !== undefined,
      queueTtlMs: config.requests.queueTtlMs,
      maxReplyBytes: config.exchange.maxReplyBytes,
      logger,
    },
  });
  const pipeline = delivery.pipeline;
  // A device that comes online gets what waited for it, in order.
  tracker.onAvailable((jid) => void delivery.deliverQueued(jid).catch((err: unknown) => logger.warn({ event: "queue-drain-failed", jid, err: (err as Error).message }, "offline queue not drained")));

  // serving → unready (SIGTERM: readiness fails, requests still served until load balancers notice)
  // → draining (new requests refused, requests in flight finish).
  let phase: "serving" | "unready" | "draining" = "serving";
  const app = createApp({
    logger,
    metrics,
    registry: metrics.registry,
    isDraining: () => phase === "draining",
    readiness: { checks: () => ({ redis: redis.ready, xmpp: component.online, accepting: phase === "serving" }) },
    devices: {
      addressing: new DeviceAddressing({ hostSuffix: config.http.deviceHostSuffix }, { registry }),
      delivery,
      admission: new Admission({
        cap,
        ...(config.limits.clientRate
          ? { rate: { limiter: new ClientRateLimiter(redis, config.limits.clientRate), key: config.limits.clientRate.key } }
          : {}),
        metrics,
        overloadRetryAfterS: 1,
      }),
      maxBodyBytes: config.http.maxBodyBytes,
      budget,
    },
    admin: {
      token: config.admin.token,
      registry,
      migration,
      logger,
      presence: {
        isOnline: async (id) => {
          const state = await presence.state((await delivery.route(id)).jid);
          return state === "unknown" ? null : state === "online";
        },
      },
    },
    asyncRequests,
    maxHeaders: config.http.maxHeaders,
    serveMetrics: config.http.metricsPort === undefined,
  });
  const http = new HttpServer(app, config.http, logger);
  const metricsHttp =
    config.http.metricsPort === undefined ? undefined : new HttpServer(createMetricsApp(metrics.registry), { host: config.http.host, port: config.http.metricsPort });

  return {
    http,
    metricsHttp,
    metrics,
    pending,
    exchanger,
    component,
    redis,
    registry,
    passThrough,
    async start() {
      // A bad devices file stops the start before anything connects.
      const imported = config.devices.file !== undefined ? await loadDevicesFile(config.devices.file) : undefined;
      await redis.start();
      if (imported) {
        const counts = await importDevices(registry, imported).catch(async (err: unknown) => {
          await redis.stop();
          throw err;
        });
        logger.info({ event: "devices-imported", file: config.devices.file, ...counts }, "devices file imported");
      }
      // Entries written before device ids were canonical (README "Device ids"): moved to their lower-case id.
      await registry.canonicalizeIds().then(
        ({ renamed, dropped }) => {
          if (renamed.length + dropped.length > 0) logger.warn({ event: "device-ids-canonicalized", renamed, dropped }, "registry entries moved to their lower-case id");
        },
        (err: unknown) => logger.warn({ event: "device-ids-not-canonicalized", err: (err as Error).message }, "registry ids not checked for capitals (Redis unreachable)"),
      );
      await bus.start();
      await slotNotices.start();
      await component.start();
      await metricsHttp?.start();
      await http.start();
      logger.info({ event: "started", port: http.port }, "gateway listening");
    },
    /**
     * Drain (README, "Operations endpoints"): readiness fails at once, but requests are served for GATEWAY_DRAIN_GRACE_MS more,
     * until the load balancer's health check has taken the instance out (else they would get 503); then new
     * requests are refused and those in flight finish within GATEWAY_DRAIN_TIMEOUT_MS.
     */
    async stop() {
      phase = "unready";
      logger.info({ event: "draining", graceMs: config.drainGraceMs }, "readiness failed; serving until load balancers notice");
      await new Promise((resolve) => setTimeout(resolve, config.drainGraceMs));
      phase = "draining";
      // The HTTP requests in flight, and the deliveries running detached from any (202-accepted
      // asynchronous requests, offline queues being delivered): their outcomes are stored before Redis goes.
      const requests = http.stop();
      const detached = pipeline.idle();
      const drained = Promise.all([requests, detached]);
      const bound = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), config.drainTimeoutMs).unref());
      if ((await Promise.race([drained, bound])) === "timeout") {
        logger.warn({ event: "drain-timeout", inFlight: pending.size, detached: pipeline.detachedCount }, "drain bound reached; failing what is left");
        // Exchanges already sent end "outcome unknown" (their Idempotency-Keys are kept: the device may act on
        // them yet); nothing is sent any more (GW_SHUTTING_DOWN, keys freed).
        exchanger.shutDown();
        deviceQueue.failAll(new GatewayError("GW_SHUTTING_DOWN")); // requests still waiting for a device's slot: not sent
        await passThrough.stop(); // the HTTP pass-through's exchanges too, else a hung device holds the stop
        await requests;
        // Their outcomes are written now; a Redis that does not answer is not waited for past its timeout.
        const settled = await Promise.race([detached.then(() => "settled" as const), delay(config.redis.commandTimeoutMs * 2)]);
        if (settled !== "settled") logger.warn({ event: "drain-detached-left", detached: pipeline.detachedCount }, "asynchronous outcomes not stored before the stop");
      }
      await metricsHttp?.stop();
      await passThrough.stop();
      await component.stop();
      await departure;
      // Replies that arrived while the component was closing may still be on their way to their owner.
      await router.settle(config.redis.commandTimeoutMs * 2);
      await bus.stop();
      await slotNotices.stop();
      await redis.stop();
      logger.info({ event: "stopped" }, "gateway stopped");
    },
  };
}
