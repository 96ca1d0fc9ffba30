// A closed-loop load driver: N loops, each with one request outstanding at a time, over a fixed window.
import { performance } from "node:perf_hooks";
import { setImmediate as yieldToLoop, setTimeout as delay } from "node:timers/promises";
import { summarize, type LatencySummary } from "../common/stats.js";

/** One request to one target: resolves when it succeeded, rejects (with a reason) when it did not. */
export type Issue = (target: string) => Promise<void>;

export interface LoadPlan {
  /** Requests outstanding at any time (one per loop). */
  concurrency: number;
  /** Requests go to these in turn, so every target gets the same share. */
  targets: readonly string[];
  warmupMs: number;
  durationMs: number;
  /** How long to wait, after the window, for requests still outstanding before giving up on them. */
  drainMs: number;
}

export interface LoadHooks {
  onWindowStart?(): void;
  onWindowEnd?(): void;
}

export interface LoadResult {
  /** Successful requests that completed inside the measured window. */
  completed: number;
  /** Failed requests that completed inside the measured window. */
  errors: number;
  /** The measured window as it really was (timers run late under load). */
  windowS: number;
  rate: number;
  /** Latency of the successful requests of the window; errors are counted, not timed. */
  latencyMs: LatencySummary;
  warmupCompleted: number;
  warmupErrors: number;
  /** Requests still outstanding when the drain bound ran out. */
  unfinished: number;
  /** A few distinct error messages, to say what went wrong without a log. */
  errorSamples: string[];
}

/** What one window saw, before it is summarized: windows of the same path add up (mergeWindows). */
export interface WindowCounts {
  latencies: number[];
  errors: number;
  windowS: number;
  warmupCompleted: number;
  warmupErrors: number;
  unfinished: number;
  errorSamples: Iterable<string>;
}

export async function runLoad(issue: Issue, plan: LoadPlan, hooks: LoadHooks = {}): Promise<LoadResult> {
  return loadResult(await runWindow(issue, plan, hooks));
}

/** The closed loop of runLoad: warm-up, one measured window, the drain; what the window saw. */
export async function runWindow(issue: Issue, plan: LoadPlan, hooks: LoadHooks = {}): Promise<WindowCounts> {
  if (plan.targets.length === 0) throw new Error("runWindow: no targets");
  let phase: "warmup" | "measure" | "done" = "warmup";
  let next = 0;
  let active = 0;
  let windowStart = 0;
  let windowEnd = 0;
  let errors = 0;
  let warmupCompleted = 0;
  let warmupErrors = 0;
  const latencies: number[] = [];
  const errorSamples = new Set<string>();

  const loop = async (): Promise<void> => {
    active++;
    try {
      while (phase !== "done") {
        const target = plan.targets[next++ % plan.targets.length] as string;
        const t0 = performance.now();
        let failure: unknown;
        try {
          await issue(target);
        } catch (err) {
          failure = err;
        }
        const ms = performance.now() - t0;
        // Counted by when the request completed, so the window holds exactly what it saw finish.
        if (phase === "measure") {
          if (failure === undefined) latencies.push(ms);
          else errors++;
        } else if (phase === "warmup") {
          if (failure === undefined) warmupCompleted++;
          else warmupErrors++;
        }
        if (failure !== undefined) {
          if (errorSamples.size < 5) errorSamples.add(failure instanceof Error ? failure.message : JSON.stringify(failure));
          // A failure that settles in microtasks alone would starve the timers that end the run.
          await yieldToLoop();
        }
      }
    } finally {
      active--;
    }
  };

  const measureTimer = setTimeout(() => {
    phase = "measure";
    windowStart = performance.now();
    hooks.onWindowStart?.();
  }, plan.warmupMs);
  const ended = new Promise<void>((resolve) =>
    setTimeout(() => {
      phase = "done";
      windowEnd = performance.now();
      hooks.onWindowEnd?.();
      resolve();
    }, plan.warmupMs + plan.durationMs),
  );

  const loops = Array.from({ length: plan.concurrency }, () => loop());
  await ended;
  clearTimeout(measureTimer);
  const drained = Promise.all(loops).then(() => "drained" as const);
  await Promise.race([drained, delay(plan.drainMs, "bound" as const, { ref: false })]);

  return {
    latencies,
    errors,
    windowS: (windowEnd - windowStart) / 1000,
    warmupCompleted,
    warmupErrors,
    unfinished: active,
    errorSamples,
  };
}

/** Several windows of one path as one: their requests, errors and seconds added up. */
export function mergeWindows(windows: readonly WindowCounts[]): WindowCounts {
  const samples = new Set<string>();
  for (const w of windows) for (const s of w.errorSamples) if (samples.size < 5) samples.add(s);
  const sum = (f: (w: WindowCounts) => number): number => windows.reduce((total, w) => total + f(w), 0);
  return {
    latencies: windows.flatMap((w) => w.latencies),
    errors: sum((w) => w.errors),
    windowS: sum((w) => w.windowS),
    warmupCompleted: sum((w) => w.warmupCompleted),
    warmupErrors: sum((w) => w.warmupErrors),
    unfinished: sum((w) => w.unfinished),
    errorSamples: samples,
  };
}

/** A window's counts as a LoadResult: its rate and latency summary computed from them. */
export function loadResult(counts: WindowCounts): LoadResult {
  const { latencies, windowS } = counts;
  return {
    completed: latencies.length,
    errors: counts.errors,
    windowS,
    rate: windowS > 0 ? latencies.length / windowS : 0,
    latencyMs: summarize(latencies),
    warmupCompleted: counts.warmupCompleted,
    warmupErrors: counts.warmupErrors,
    unfinished: counts.unfinished,
    errorSamples: [...counts.errorSamples],
  };
}
