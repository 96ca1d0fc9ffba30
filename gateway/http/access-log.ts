import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../log.js";
import { statusClass, type Metrics, type Transport } from "../metrics/metrics.js";
import { facts } from "./context.js";
import { pathOf } from "./request-path.js";
import { whenClosed } from "../../lib/http/response-end.js";

/**
 * Told of every device request once its answer is over: the device, the transport that carried it (`none`:
 * refused before any, such as 503 GW_OVERLOADED) and the status (499: the client hung up first). Called on
 * every device request: an observer must cost next to nothing when it has nothing to count.
 */
export interface DeviceOutcomes {
  observe(deviceId: string, transport: Transport, status: number): void;
}

/**
 * One JSON log line and one metric sample per request, written when the response is done (or aborted); the
 * device request's outcome goes to `outcomes` (the migration waves' counts).
 */
export function accessLog(
  logger: Logger,
  metrics: Metrics,
  outcomes?: DeviceOutcomes,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    // A number, not hrtime's BigInt: two BigInts and a conversion on every request for nothing finer.
    const started = performance.now();
    whenClosed(res, () => {
      const seconds = (performance.now() - started) / 1e3;
      const f = facts(res);
      const method = req.method ?? "";
      const status = res.writableFinished ? res.statusCode : 499; // 499: the client went away first
      const path = pathOf(req.url ?? "");
      if (f.deviceId || path.startsWith("/devices/")) {
        metrics.httpRequests.inc({ transport: f.transport, method, status_class: statusClass(status) });
        metrics.httpDuration.observe({ transport: f.transport }, seconds);
        if (f.deviceId) outcomes?.observe(f.deviceId, f.transport, status);
      }
      // Not even built for a logger that drops it.
      if (!logger.isLevelEnabled("info")) return;
      logger.info(
        {
          requestId: f.requestId,
          method,
          path: path.length > 200 ? `${path.slice(0, 200)}…` : path,
          deviceId: f.deviceId,
          transport: f.transport,
          status,
          durationMs: Math.round(seconds * 1e6) / 1e3,
          ...(f.errorCode ? { code: f.errorCode } : {}),
        },
        "request",
      );
    });
  };
}
