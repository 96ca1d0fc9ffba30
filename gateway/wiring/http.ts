import type { Tracing } from "../../lib/tracing/tracing.js";
import type { Config } from "../config.js";
import { DeviceAddressing } from "../http/addressing.js";
import { createApp, createMetricsApp } from "../http/app.js";
import { HttpServer } from "../http/server.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import type { PresenceLookup } from "../http/routes/admin.js";
import type { XmppComponent } from "../xmpp/component.js";
import type { DeliverySide } from "./delivery.js";
import type { Phases } from "./phases.js";
import type { Limits } from "./limits.js";
import type { Stores } from "./stores.js";
import type { Waves } from "./waves.js";

/** The HTTP side: the listener for clients (device requests, health, admin, results) and the metrics one. */
export function buildHttp(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  parts: {
    stores: Stores;
    limits: Limits;
    delivery: DeliverySide;
    component: XmppComponent;
    phases: Phases;
    waves: Waves;
    /** Presence as the admin API asks for it (one device, or many listed entries at once). */
    presence: Required<PresenceLookup>;
    /** Device requests get a SERVER span each when tracing is on. */
    tracing: Tracing | undefined;
  },
) {
  const { stores, limits, phases, waves } = parts;
  const { delivery } = parts.delivery;
  const app = createApp({
    logger,
    metrics,
    registry: metrics.registry,
    isDraining: () => phases.draining,
    readiness: { checks: () => ({ redis: stores.redis.ready, xmpp: parts.component.online, accepting: phases.accepting }) },
    devices: {
      addressing: new DeviceAddressing({ hostSuffix: config.http.deviceHostSuffix }, { registry: stores.registry }),
      admission: limits.admission,
      delivery,
      maxBodyBytes: config.http.maxBodyBytes,
      budget: limits.budget,
      tracing: parts.tracing,
    },
    admin: {
      token: config.admin.token,
      registry: stores.registry,
      migration: stores.migration,
      logger,
      presence: parts.presence,
      waves: waves.controller,
    },
    outcomes: waves.counter,
    asyncRequests: stores.asyncRequests,
    maxHeaders: config.http.maxHeaders,
    serveMetrics: config.http.metricsPort === undefined,
  });
  const server = new HttpServer(app, config.http, logger);
  const metricsServer =
    config.http.metricsPort === undefined
      ? undefined
      : new HttpServer(createMetricsApp(metrics.registry), { host: config.http.host, port: config.http.metricsPort });
  return {
    server,
    metricsServer,
    async start(): Promise<void> {
      await metricsServer?.start();
      await server.start();
      logger.info({ event: "started", port: server.port }, "gateway listening");
    },
    stopMetrics: async () => metricsServer?.stop(),
  };
}
