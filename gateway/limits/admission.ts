import type { IncomingMessage, ServerResponse } from "node:http";
import { GatewayError } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";
import { clientKey, type ClientKeyMode } from "./client-key.js";
import type { ClientRateLimiter } from "./client-rate-limiter.js";
import type { InFlightCap } from "./in-flight-cap.js";

export interface AdmissionDeps {
  cap: InFlightCap;
  /** Absent: no per-client rate limit (the default). */
  rate?: { limiter: Pick<ClientRateLimiter, "check">; key: ClientKeyMode };
  metrics: Pick<Metrics, "admissionRefusals">;
  overloadRetryAfterS: number;
}

/**
 * What a device request passes before any device work starts (SECURITY.md, "Limits"): the instance's
 * in-flight ceiling first (no I/O, so an overloaded instance refuses cheaply), then the client's rate.
 * Either refusal is counted by reason and thrown as a catalogue error for the route to write.
 */
export class Admission {
  constructor(private readonly deps: AdmissionDeps) {
    // Both series exist from the start, so rate() over them works before the first refusal.
    for (const reason of ["overloaded", "rate_limited"] as const) deps.metrics.admissionRefusals.inc({ reason }, 0);
  }

  /** Holds a place in the cap until the response is over (finished or aborted). */
  async admit(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { cap, rate, metrics } = this.deps;
    if (!cap.holdUntilClosed(res)) {
      metrics.admissionRefusals.inc({ reason: "overloaded" });
      throw new GatewayError("GW_OVERLOADED", {
        message: `instance already holds ${cap.max} device requests`,
        retryAfterS: this.deps.overloadRetryAfterS,
      });
    }
    if (!rate) return;
    try {
      await rate.limiter.check(clientKey(req, rate.key));
    } catch (err) {
      if (err instanceof GatewayError && err.code === "GW_RATE_LIMITED") metrics.admissionRefusals.inc({ reason: "rate_limited" });
      throw err;
    }
  }
}
