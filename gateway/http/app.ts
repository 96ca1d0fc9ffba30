import express, { type Express } from "express";
import type { Registry } from "prom-client";
import { CATALOGUE, GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { errorHandler, sendError } from "./error-response.js";
import type { DeviceOutcomes } from "./access-log.js";
import { frontDoor, type Handler } from "./front-door.js";
import { adminRoutes, type AdminRouteDeps } from "./routes/admin.js";
import { requestRoutes } from "./routes/requests.js";
import type { AsyncRequests } from "../delivery/async-requests.js";
import type { DeviceRouteDeps } from "./routes/devices.js";
import { healthRoutes, type ReadinessCheck } from "./routes/health.js";
import { metricsRoutes } from "./routes/metrics.js";

export interface AppDeps {
  logger: Logger;
  metrics: Metrics;
  registry: Registry;
  readiness: ReadinessCheck;
  devices: DeviceRouteDeps;
  /** The registry's admin API; absent (or without a token): off. */
  admin?: AdminRouteDeps;
  asyncRequests: Pick<AsyncRequests, "get">;
  isDraining: () => boolean;
  /** GATEWAY_MAX_HEADERS: more header fields is 431. */
  maxHeaders: number;
  /** False when /metrics has a listener of its own (GATEWAY_METRICS_PORT). */
  serveMetrics: boolean;
  /** Told of each device request's outcome (the migration waves' counts). */
  outcomes?: DeviceOutcomes;
}

/**
 * The HTTP application: the front door (front-door.ts: request id, access log, head checks, drain, device
 * requests), then the gateway's own routes in Express. Device requests come first: with Host or
 * forward-proxy addressing any path may be a device's own. It never listens: `server.ts` does, and tests
 * may hand it to supertest directly.
 */
export function createApp(deps: AppDeps): Handler {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag"); // device replies are passed through as they are
  app.set("query parser", false); // the device sees the raw query string; the gateway never parses it
  app.use(healthRoutes(deps.readiness));
  if (deps.serveMetrics) app.use(metricsRoutes(deps.registry));
  if (deps.admin) app.use(adminRoutes(deps.admin));
  app.use(requestRoutes(deps.asyncRequests));
  app.use((_req, res) => sendError(res, new GatewayError("GW_NOT_FOUND")));
  app.use(errorHandler(deps.logger));
  const rest = app as unknown as Handler;
  return frontDoor({ ...deps, rest });
}

/** The metrics listener of its own (GATEWAY_METRICS_PORT): /metrics, and 404 for anything else. */
export function createMetricsApp(registry: Registry): Express {
  const app = express();
  app.disable("x-powered-by");
  app.use(metricsRoutes(registry));
  app.use((_req, res) => {
    res.status(404).json({ error: { code: "GW_NOT_FOUND", message: CATALOGUE.GW_NOT_FOUND.message } });
  });
  return app;
}
