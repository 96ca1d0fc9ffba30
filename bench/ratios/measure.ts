// Runs one path: starts a load worker, samples every process's CPU when the worker opens and closes its
// measured window, and collects the worker's result.
import type { Teardown } from "../../test/helpers/stack.js";
import { cpuSecondsBetween, machineBusyTicks, sampleTicks, type Pids } from "../common/cpu.js";
import type { LoadResult } from "./load.js";
import type { LoadConfig } from "./load-worker.js";
import { perRequest, type PathResult } from "./report.js";
import { WorkerProcess } from "../common/worker-process.js";

/** Called as the measured window opens and closes (after the CPU samples), e.g. to profile just the window. */
export interface WindowHooks {
  onWindowStart?(): void;
  onWindowEnd?(): void;
}

export async function measurePath(
  label: string,
  config: LoadConfig,
  pids: Pids,
  hz: number,
  teardown: Teardown,
  hooks: WindowHooks = {},
): Promise<PathResult> {
  const worker = WorkerProcess.start(`load ${label}`, new URL("./load-worker.ts", import.meta.url), config);
  teardown.add(`load worker ${label}`, () => worker.stop());
  const all = (): Pids => ({ ...pids, load: worker.pid });
  let before: ReturnType<typeof sampleTicks> | undefined;
  let after: ReturnType<typeof sampleTicks> | undefined;
  let machine: Array<number | undefined> = [];
  // Sampled as the event line arrives: at most a few ms after the worker's own window edge, against a
  // window of seconds.
  worker.onEvent((e) => {
    if (e.event === "window-start") {
      before = sampleTicks(all());
      machine = [machineBusyTicks()];
      hooks.onWindowStart?.();
    } else if (e.event === "window-end") {
      after = sampleTicks(all());
      machine.push(machineBusyTicks());
      hooks.onWindowEnd?.();
    }
  });
  try {
    await worker.next("ready", 30_000);
    const bound = config.warmupMs + config.durationMs + config.drainMs + 30_000;
    const { result } = (await worker.next("result", bound)) as unknown as { result: LoadResult };
    if (!before || !after) throw new Error(`${label}: the worker reported no measured window`);
    const cpuS = cpuSecondsBetween(before, after, hz);
    return { label, load: result, cpuS, cpuMsPerRequest: perRequest(cpuS, result.completed), otherCpuS: othersCpu(machine, cpuS, hz) };
  } finally {
    await worker.stop();
  }
}

/** Machine-wide busy CPU minus ours: what other processes (other sessions, the kernel) took meanwhile. */
function othersCpu(machine: Array<number | undefined>, ours: Record<string, number | null>, hz: number): number | null {
  const [start, end] = machine;
  if (start === undefined || end === undefined) return null;
  const mine = Object.values(ours).reduce<number>((sum, s) => sum + (s ?? 0), 0);
  return Math.max(0, (end - start) / hz - mine);
}
