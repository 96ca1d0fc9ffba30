import type { RequestHandler } from "express";
import type { Logger } from "../log.js";
import { statusClass, type Metrics } from "../metrics/metrics.js";
import { facts } from "./context.js";

/** One JSON log line and one metric sample per request, written when the response is done (or aborted). */
export function accessLog(logger: Logger, metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const started = process.hrtime.bigint();
    res.once("close", () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const f = facts(res);
      const status = res.writableFinished ? res.statusCode : 499; // 499: the client went away first
      if (req.path.startsWith("/devices/") || f.deviceId) {
        metrics.httpRequests.inc({ transport: f.transport, method: req.method, status_class: statusClass(status) });
        metrics.httpDuration.observe({ transport: f.transport }, seconds);
      }
      logger.info(
        {
          requestId: f.requestId,
          method: req.method,
          path: req.path.length > 200 ? `${req.path.slice(0, 200)}…` : req.path,
          deviceId: f.deviceId,
          transport: f.transport,
          status,
          durationMs: Math.round(seconds * 1e6) / 1e3,
          ...(f.errorCode ? { code: f.errorCode } : {}),
        },
        "request",
      );
    });
    next();
  };
}
