// Each path of the default run is measured loaded (the closed loop of load.ts: 64 clients for a time window)
// and then, unless --no-latency, unloaded (sequential.ts: one client, one request at a time), on the same
// processes. A path and its baseline are measured as a pair: their loaded windows in alternating slices
// (measure.ts, measureAlternating), then each unloaded. Each run also counts the connections the devices
// accepted during its windows.
import type { Teardown } from "../../test/helpers/stack.js";
import type { BenchArgs } from "../common/args.js";
import type { PidGroups } from "../common/cpu.js";
import { TEMPERATURE_BODY } from "../common/device.js";
import { progress } from "../common/progress.js";
import type { BenchFleet } from "./fleet.js";
import type { LoadConfig, LoadDriver, LoadShape } from "./load-worker.js";
import { measureAlternating, measurePath, type PathJob, type WindowHooks } from "./measure.js";
import type { PathResult } from "./report.js";

export const CONCURRENCY = 64;
/** Seconds of a loaded slice: the measured window is cut in slices of about this length, at least one. */
const SLICE_S = 2;
/** The closed loop's ramp before each slice after the first, whose warm-up is `--warmup`. */
const RAMP_MS = 500;

/** How many slices a measured window of `durationS` is cut into. */
export function sliceCount(durationS: number): number {
  return Math.max(1, Math.round(durationS / SLICE_S));
}

export interface PathRuns {
  loaded: PathResult;
  /** Undefined with --no-latency. */
  unloaded: PathResult | undefined;
}

export interface PairRuns {
  first: PathRuns;
  second: PathRuns;
}

export interface PathSpec {
  label: string;
  driver: LoadDriver;
  /** The devices, as this path's requester names them. */
  ids: readonly string[];
  processes: PidGroups;
  /** The devices are checked before the loaded run, each retried for this long (0: once); the unloaded run follows unchecked. */
  retryForMs: number;
}

export interface PathRunner {
  /** The unloaded shape, or null with --no-latency. */
  readonly unloaded: Extract<LoadShape, { kind: "sequential" }> | null;
  /** Slices per path in a pair's loaded run. */
  readonly slices: number;
  /** A path (`second`) and its baseline (`first`): loaded, alternating, then each unloaded. */
  measurePair(first: PathSpec, second: PathSpec): Promise<PairRuns>;
}

export function pathRunner(args: BenchArgs, fleet: Pick<BenchFleet, "connectionsAccepted">, hz: number, teardown: Teardown): PathRunner {
  const slices = sliceCount(args.durationS);
  const sliced: LoadShape = {
    kind: "slices",
    slices,
    concurrency: CONCURRENCY,
    warmupMs: args.warmupS * 1000,
    rampMs: RAMP_MS,
    durationMs: (args.durationS * 1000) / slices,
    drainMs: 5_000,
  };
  const unloaded = args.paths.latency
    ? { kind: "sequential" as const, warmupRequests: args.paths.latencyWarmupRequests, requests: args.paths.latencyRequests }
    : null;
  const common = (spec: PathSpec): Omit<LoadConfig, "shape" | "check"> => ({
    ids: [...spec.ids],
    driver: spec.driver,
    expectBody: TEMPERATURE_BODY,
    requestTimeoutMs: 10_000,
  });

  /** Connections the devices accepted during a path's windows, per request; marks taken at each window edge. */
  const connectionCounter = (): { hooks: WindowHooks; perRequest(completed: number): Promise<number> } => {
    const marks: Array<Promise<number>> = [];
    const mark = (): void => void marks.push(fleet.connectionsAccepted().catch(() => Number.NaN));
    return {
      hooks: { onWindowStart: mark, onWindowEnd: mark },
      async perRequest(completed) {
        const counts = await Promise.all(marks);
        let accepted = counts.length > 0 && counts.length % 2 === 0 ? 0 : Number.NaN;
        for (let i = 0; i + 1 < counts.length; i += 2) accepted += (counts[i + 1] as number) - (counts[i] as number);
        return completed > 0 ? accepted / completed : Number.NaN;
      },
    };
  };

  const job = (spec: PathSpec, config: LoadConfig, hooks: WindowHooks): PathJob => ({
    label: spec.label,
    config,
    pids: spec.processes,
    hooks,
  });
  const counted = async (result: PathResult, counter: ReturnType<typeof connectionCounter>): Promise<PathResult> => ({
    ...result,
    deviceConnectionsPerRequest: await counter.perRequest(result.load.completed),
  });

  const loadedPair = async (first: PathSpec, second: PathSpec): Promise<[PathResult, PathResult]> => {
    const counters = [connectionCounter(), connectionCounter()] as const;
    const config = (spec: PathSpec): LoadConfig => ({ ...common(spec), shape: sliced, check: { retryForMs: spec.retryForMs } });
    const [a, b] = await measureAlternating(
      job(first, config(first), counters[0].hooks),
      job(second, config(second), counters[1].hooks),
      hz,
      teardown,
    );
    return [await counted(a, counters[0]), await counted(b, counters[1])];
  };

  const unloadedRun = async (spec: PathSpec, shape: NonNullable<typeof unloaded>): Promise<PathResult> => {
    progress(`${spec.label}, unloaded: ${shape.requests} requests one at a time after ${shape.warmupRequests}`);
    const counter = connectionCounter();
    const result = await measurePath(job(spec, { ...common(spec), shape, check: null }, counter.hooks), hz, teardown);
    return counted(result, counter);
  };

  return {
    unloaded,
    slices,
    async measurePair(first, second) {
      progress(
        `${first.label} and ${second.label}: ${args.warmupS} s warm-up each, then ${slices} slices of ` +
          `${args.durationS / slices} s each, alternating; ${CONCURRENCY} clients`,
      );
      const [a, b] = await loadedPair(first, second);
      if (!unloaded) return { first: { loaded: a, unloaded: undefined }, second: { loaded: b, unloaded: undefined } };
      return {
        first: { loaded: a, unloaded: await unloadedRun(first, unloaded) },
        second: { loaded: b, unloaded: await unloadedRun(second, unloaded) },
      };
    },
  };
}
