// Each path of the default run is measured twice in a row, on the same processes: loaded (the closed loop of
// load.ts: 64 clients for a time window) and then, unless --no-latency, unloaded (sequential.ts: one client,
// one request at a time). Each run also counts the connections the devices accepted during its window.
import type { Teardown } from "../../test/helpers/stack.js";
import type { BenchArgs } from "../common/args.js";
import type { PidGroups } from "../common/cpu.js";
import { TEMPERATURE_BODY } from "../common/device.js";
import { progress } from "../common/progress.js";
import type { BenchFleet } from "./fleet.js";
import type { LoadConfig, LoadDriver, LoadShape } from "./load-worker.js";
import { measurePath, type WindowHooks } from "./measure.js";
import type { PathResult } from "./report.js";

export const CONCURRENCY = 64;

export interface PathRuns {
  loaded: PathResult;
  /** Undefined with --no-latency. */
  unloaded: PathResult | undefined;
}

/** One run of a path. */
export type Run = () => Promise<PathResult>;

export interface PathSpec {
  label: string;
  driver: LoadDriver;
  processes: PidGroups;
  /** The devices are checked before the loaded run, each retried for this long (0: once); the unloaded run follows unchecked. */
  retryForMs: number;
  /** Runs a run, e.g. checking the gateway's metrics around it. */
  wrap?: (run: Run) => Promise<PathResult>;
}

export interface PathRunner {
  /** The unloaded shape, or null with --no-latency. */
  readonly unloaded: Extract<LoadShape, { kind: "sequential" }> | null;
  measure(spec: PathSpec): Promise<PathRuns>;
}

export function pathRunner(
  args: BenchArgs,
  ids: readonly string[],
  fleet: Pick<BenchFleet, "connectionsAccepted">,
  hz: number,
  teardown: Teardown,
): PathRunner {
  const closedLoop: LoadShape = {
    kind: "closed-loop",
    concurrency: CONCURRENCY,
    warmupMs: args.warmupS * 1000,
    durationMs: args.durationS * 1000,
    drainMs: 5_000,
  };
  const unloaded = args.paths.latency
    ? { kind: "sequential" as const, warmupRequests: args.paths.latencyWarmupRequests, requests: args.paths.latencyRequests }
    : null;
  const common = { ids: [...ids], expectBody: TEMPERATURE_BODY, requestTimeoutMs: 10_000 };

  /** `run`, with the connections the devices accepted during its window counted, per request. */
  const countingConnections =
    (run: (hooks: WindowHooks) => Promise<PathResult>): Run =>
    async () => {
      const marks: Array<Promise<number>> = [];
      const mark = (): void => void marks.push(fleet.connectionsAccepted().catch(() => Number.NaN));
      const result = await run({ onWindowStart: mark, onWindowEnd: mark });
      const [start = Number.NaN, end = Number.NaN] = await Promise.all(marks);
      return { ...result, deviceConnectionsPerRequest: result.load.completed > 0 ? (end - start) / result.load.completed : Number.NaN };
    };

  const once = (spec: PathSpec, config: LoadConfig): Promise<PathResult> => {
    const run = countingConnections((hooks) => measurePath(spec.label, config, spec.processes, hz, teardown, hooks));
    return spec.wrap ? spec.wrap(run) : run();
  };

  return {
    unloaded,
    async measure(spec) {
      progress(`${spec.label}: ${args.warmupS} s warm-up + ${args.durationS} s, ${CONCURRENCY} clients`);
      const loaded = await once(spec, { ...common, driver: spec.driver, shape: closedLoop, check: { retryForMs: spec.retryForMs } });
      if (!unloaded) return { loaded, unloaded: undefined };
      progress(`${spec.label}, unloaded: ${unloaded.requests} requests one at a time after ${unloaded.warmupRequests}`);
      return { loaded, unloaded: await once(spec, { ...common, driver: spec.driver, shape: unloaded, check: null }) };
    },
  };
}
