// The unloaded driver: one client, one request at a time, for a fixed count. What a path adds to a single
// request's latency, with no queue anywhere (the closed loop of load.ts measures the same path saturated,
// where latency is mostly waiting: Little's law).
import { performance } from "node:perf_hooks";
import { setImmediate as yieldToLoop } from "node:timers/promises";
import { loadResult, type Issue, type LoadHooks, type LoadResult } from "./load.js";

export interface SequentialPlan {
  /** Requests go to these in turn. */
  targets: readonly string[];
  /** Sent first and not counted: connections opened, code paths warm. */
  warmupRequests: number;
  /** Timed, one after the other. */
  requests: number;
}

export async function runSequential(issue: Issue, plan: SequentialPlan, hooks: LoadHooks = {}): Promise<LoadResult> {
  if (plan.targets.length === 0) throw new Error("runSequential: no targets");
  let next = 0;
  let warmupCompleted = 0;
  let warmupErrors = 0;
  let errors = 0;
  const latencies: number[] = [];
  const errorSamples = new Set<string>();
  const one = async (): Promise<number | undefined> => {
    const target = plan.targets[next++ % plan.targets.length] as string;
    const t0 = performance.now();
    try {
      await issue(target);
      return performance.now() - t0;
    } catch (err) {
      if (errorSamples.size < 5) errorSamples.add(err instanceof Error ? err.message : JSON.stringify(err));
      // A failure that settles in microtasks alone would keep the event loop from anything else.
      await yieldToLoop();
      return undefined;
    }
  };
  for (let i = 0; i < plan.warmupRequests; i++) {
    if ((await one()) === undefined) warmupErrors++;
    else warmupCompleted++;
  }
  hooks.onWindowStart?.();
  const windowStart = performance.now();
  for (let i = 0; i < plan.requests; i++) {
    const ms = await one();
    if (ms === undefined) errors++;
    else latencies.push(ms);
  }
  const windowS = (performance.now() - windowStart) / 1000;
  hooks.onWindowEnd?.();
  return loadResult({ latencies, errors, windowS, warmupCompleted, warmupErrors, unfinished: 0, errorSamples });
}
