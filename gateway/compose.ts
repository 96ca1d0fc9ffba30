import { Registry } from "prom-client";
import type { Config } from "./config.js";
import { PendingExchanges, type PendingHooks } from "./correlation/pending.js";
import { ReplyBus } from "./correlation/reply-bus.js";
import { CorrelationStore } from "./correlation/store.js";
import { StreamRoutes } from "./correlation/stream-routes.js";
import { GatewayError } from "./errors.js";
import { createApp } from "./http/app.js";
import { HttpServer } from "./http/server.js";
import type { Lifecycle } from "./lifecycle.js";
import type { Logger } from "./log.js";
import { createMetrics, type Metrics } from "./metrics/metrics.js";
import { RedisStore } from "./redis/client.js";
import { TemplateResolver } from "./registry/resolver.js";
import { XmppComponent } from "./xmpp/component.js";
import { XmppExchanger } from "./xmpp/exchange.js";
import { ReplyRouter } from "./xmpp/reply-router.js";

export interface Gateway extends Lifecycle {
  readonly http: HttpServer;
  readonly metrics: Metrics;
  readonly pending: PendingExchanges;
  readonly component: XmppComponent;
  readonly redis: RedisStore;
}

/**
 * The composition root: config → Redis → XMPP component → correlation → HTTP app, each part handed its
 * dependencies explicitly. Nothing here is global, so several gateways can run in one process (tests do).
 */
export function createGateway(config: Config, baseLogger: Logger): Gateway {
  // Every line of this instance says which instance wrote it.
  const logger = baseLogger.child({ instance: config.instanceId });
  const metrics = createMetrics(new Registry());
  const redis = new RedisStore(config.redis, { logger, onReadyChange: (ready) => metrics.redisConnected.set(ready ? 1 : 0) });
  const component = new XmppComponent(config.xmpp, { logger, onOnlineChange: (online) => metrics.xmppConnected.set(online ? 1 : 0) });
  const store = new CorrelationStore(redis);
  const pendingHooks: PendingHooks = { onTimeout: () => metrics.iqTimeouts.inc() };
  const pending = new PendingExchanges(pendingHooks);
  const streamRoutes = new StreamRoutes(redis, { parkTtlMs: config.exchange.timeoutMs, maxParked: 4096 });
  const exchanger = new XmppExchanger({ component, store, streamRoutes, pending, metrics, logger, instanceId: config.instanceId, limits: config.exchange });
  pendingHooks.onSettled = (p) => exchanger.release(p);
  const bus = new ReplyBus(redis, config.instanceId, logger);
  new ReplyRouter({ component, bus, exchanger, pending, store, streamRoutes, metrics, instanceId: config.instanceId });
  const resolver = new TemplateResolver(config.devices.jidTemplate, config.exchange.timeoutMs);

  let draining = false;
  const app = createApp({
    logger,
    metrics,
    registry: metrics.registry,
    isDraining: () => draining,
    readiness: { checks: () => ({ redis: redis.ready, xmpp: component.online, accepting: !draining }) },
    devices: { resolver, exchange: (req) => exchanger.exchange(req), maxBodyBytes: config.http.maxBodyBytes },
  });
  const http = new HttpServer(app, config.http);

  return {
    http,
    metrics,
    pending,
    component,
    redis,
    async start() {
      await redis.start();
      await bus.start();
      await component.start();
      await http.start();
      logger.info({ event: "started", port: http.port }, "gateway listening");
    },
    /** Drain (DESIGN.md §7): refuse new work, let exchanges in flight finish within the bound, then close. */
    async stop() {
      draining = true;
      const drained = http.stop();
      const bound = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), config.drainTimeoutMs).unref());
      if ((await Promise.race([drained, bound])) === "timeout") {
        logger.warn({ event: "drain-timeout", inFlight: pending.size }, "drain bound reached; failing what is left");
        pending.failAll(new GatewayError("GW_SHUTTING_DOWN"));
        await drained;
      }
      await component.stop();
      await bus.stop();
      await redis.stop();
      logger.info({ event: "stopped" }, "gateway stopped");
    },
  };
}
