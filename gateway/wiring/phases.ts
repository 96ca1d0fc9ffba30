import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";

export type Phase = "serving" | "unready" | "draining";

/**
 * The instance's phase: serving → unready (SIGTERM: readiness fails, requests still served until load
 * balancers notice) → draining (new requests refused, requests in flight finish).
 */
export class Phases {
  private phase: Phase = "serving";

  /** Readiness: only a serving instance takes new requests from its load balancer. */
  get accepting(): boolean {
    return this.phase === "serving";
  }

  /** New requests are refused (503 GW_SHUTTING_DOWN). */
  get draining(): boolean {
    return this.phase === "draining";
  }

  enter(phase: Phase): void {
    this.phase = phase;
  }
}

type Step = () => unknown;

export interface Sequence {
  /** In order: each part connects once the ones before it are up. */
  start: Step[];
  drain: {
    /** GATEWAY_DRAIN_GRACE_MS: served while load balancers notice the failed readiness. */
    graceMs: number;
    /** GATEWAY_DRAIN_TIMEOUT_MS: what is still in flight after it is failed. */
    boundMs: number;
    /** How long outcomes failed at the bound may take to be stored (a Redis that does not answer is not waited for past its timeout). */
    settleMs: number;
    /** Refuses new requests; resolves once the HTTP requests in flight are answered. */
    requests: () => Promise<void>;
    /** Resolves once no delivery runs detached from a request (202-accepted, offline queues being delivered). */
    detached: () => Promise<void>;
    /** What is left at the bound, for the log. */
    left: () => { inFlight: number; detached: number };
    /** At the bound, in order: what is still in flight or waiting is failed. */
    atBound: Step[];
  };
  /** After the drain, in order. */
  stop: Step[];
}

/**
 * Start, drain and stop of one gateway instance (README, "Operations endpoints"): on stop, readiness fails at
 * once, but requests are served for the grace more, until the load balancer's health check has taken the
 * instance out (else they would get 503); then new requests are refused and those in flight finish within
 * the bound, after which what is left is failed; then the parts close in order.
 */
export function runInPhases(phases: Phases, logger: Logger, sequence: Sequence): Lifecycle {
  return {
    async start() {
      for (const step of sequence.start) await step();
    },
    async stop() {
      await drain(phases, logger, sequence.drain);
      for (const step of sequence.stop) await step();
      logger.info({ event: "stopped" }, "gateway stopped");
    },
  };
}

async function drain(phases: Phases, logger: Logger, d: Sequence["drain"]): Promise<void> {
  phases.enter("unready");
  logger.info({ event: "draining", graceMs: d.graceMs }, "readiness failed; serving until load balancers notice");
  await new Promise((resolve) => setTimeout(resolve, d.graceMs));
  phases.enter("draining");
  // The HTTP requests in flight, and the deliveries running detached from any: their outcomes are stored
  // before Redis goes.
  const requests = d.requests();
  const detached = d.detached();
  const drained = Promise.all([requests, detached]);
  const bound = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), d.boundMs).unref());
  if ((await Promise.race([drained, bound])) !== "timeout") return;
  logger.warn({ event: "drain-timeout", ...d.left() }, "drain bound reached; failing what is left");
  for (const step of d.atBound) await step();
  await requests;
  // Their outcomes are written now; a Redis that does not answer is not waited for past its timeout.
  const settled = await Promise.race([detached.then(() => "settled" as const), delay(d.settleMs)]);
  if (settled !== "settled")
    logger.warn({ event: "drain-detached-left", detached: d.left().detached }, "asynchronous outcomes not stored before the stop");
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
