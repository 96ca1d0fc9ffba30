import type { IncomingMessage } from "node:http";
import { GatewayError } from "../errors.js";
import { pathOf } from "./request-path.js";

/** Paths still served while the instance drains: the orchestrator and Prometheus keep watching it go. */
const SERVED_WHILE_DRAINING = new Set(["/healthz", "/readyz", "/metrics"]);

/**
 * While the instance drains, requests that still arrive on kept-alive connections get 503
 * GW_SHUTTING_DOWN (the caller closes the connection), so the client retries elsewhere. Health endpoints stay up.
 */
export function drainingRefusal(req: IncomingMessage, isDraining: () => boolean): GatewayError | undefined {
  if (!isDraining() || SERVED_WHILE_DRAINING.has(pathOf(req.url ?? ""))) return undefined;
  return new GatewayError("GW_SHUTTING_DOWN", { retryAfterS: 1 });
}
