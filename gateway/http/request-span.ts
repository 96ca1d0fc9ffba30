import type { IncomingMessage, ServerResponse } from "node:http";
import { ATTR, pathOnly } from "../../lib/tracing/attributes.js";
import type { TraceSpan, Tracing } from "../../lib/tracing/tracing.js";
import { whenClosed } from "../../lib/http/response-end.js";
import { facts } from "./context.js";

/**
 * The SERVER span of one device request (README, "Tracing"), continuing the client's W3C `traceparent` and
 * `tracestate` (a new trace without a valid one), named by its method as the HTTP semantic conventions name a
 * span without a route template. It ends with the response: the status code, the catalogue code as
 * `error.type`, the transport, and status ERROR for a 5xx. A client that left first has no status code.
 * Called only when tracing is on: nothing of it runs for an untraced request.
 */
export function startRequestSpan(
  tracing: Tracing,
  req: IncomingMessage & { method: string; url: string },
  res: ServerResponse,
  deviceId: string,
  startTime: number,
): TraceSpan {
  const f = facts(res);
  const span = tracing.continue(
    req.method,
    "server",
    { traceparent: single(req.headers.traceparent), tracestate: single(req.headers.tracestate) },
    { [ATTR.method]: req.method, [ATTR.path]: pathOnly(req.url), [ATTR.deviceId]: deviceId, [ATTR.requestId]: f.requestId },
    startTime,
  );
  whenClosed(res, () => {
    span.set(ATTR.transport, f.transport);
    if (res.writableFinished) span.answered(res.statusCode, 500, f.errorCode);
    else span.set(ATTR.clientGone, true);
    span.end();
  });
  return span;
}

/** node joins repeated unknown fields with ", ": a joined traceparent is an invalid one (W3C Trace Context §3.2), a joined tracestate is the list of both (§3.3.1.1). */
function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}
