import type { IncomingMessage, ServerResponse } from "node:http";
import type { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { accessLog, type DeviceOutcomes } from "./access-log.js";
import { drainingRefusal } from "./draining.js";
import { answerThrown, sendError } from "./error-response.js";
import { requestHeadProblem } from "./head-checks.js";
import { noteRequestId } from "./request-id.js";
import { deviceRequests, type DeviceRouteDeps } from "./routes/devices.js";

/** A request handler in Express's calling convention: `next` for what it does not answer. */
export type Handler = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

export interface FrontDoorDeps {
  logger: Logger;
  metrics: Metrics;
  /** GATEWAY_MAX_HEADERS: more header fields is 431. */
  maxHeaders: number;
  isDraining: () => boolean;
  devices: DeviceRouteDeps;
  /** The gateway's own routes (health, metrics, admin, results): whatever is not a device request. */
  rest: Handler;
  /** Told of each device request's outcome (the migration waves' counts). */
  outcomes?: DeviceOutcomes;
}

/**
 * Every request comes in here: its id, its access log line and metrics, the head checks, the drain, then
 * the device lane; anything that is not a device request goes on to the gateway's own routes (`rest`,
 * Express). The device lane runs on node's request and response as they are: Express would give every
 * request its router pass and swap both objects' prototypes (their shapes then differ from node's, which
 * slows every later property access), and keep more per request in flight (docs/benchmark.md).
 */
export function frontDoor(deps: FrontDoorDeps): Handler {
  const logAccess = accessLog(deps.logger, deps.metrics, deps.outcomes);
  const devices = deviceRequests(deps.devices);
  const failed = (res: ServerResponse) => (err: unknown) => answerThrown(deps.logger, res, err);
  return (req, res, next) => {
    noteRequestId(req, res);
    logAccess(req, res);
    const refusal = requestHeadProblem(req, deps.maxHeaders) ?? drainingRefusal(req, deps.isDraining);
    if (refusal) {
      refuse(res, refusal);
      return;
    }
    devices(req as IncomingMessage & { method: string; url: string }, res, deps.rest, next, failed(res));
  };
}

/** Refused before anything else looked at it: the connection is closed after the answer. */
function refuse(res: ServerResponse, err: GatewayError): void {
  res.setHeader("Connection", "close");
  sendError(res, err);
}
