// Runs one path: starts a load worker, samples every process's CPU when the worker opens and closes its
// measured window, and collects the worker's result.
import type { Teardown } from "../../test/helpers/stack.js";
import { cpuSecondsBetween, machineBusyTicks, sampleGroupTicks, type PidGroups } from "../common/cpu.js";
import type { LoadResult } from "./load.js";
import type { LoadConfig } from "./load-worker.js";
import { perRequest, type PathResult } from "./report.js";
import { WorkerProcess } from "../common/worker-process.js";

/** Called as the measured window opens and closes (after the CPU samples), e.g. to profile just the window. */
export interface WindowHooks {
  onWindowStart?(): void;
  onWindowEnd?(): void;
}

/** How long the worker may take to get ready: its device check, and the agents' logins it may wait for. */
function readyBoundMs(config: LoadConfig): number {
  return 30_000 + config.ids.length * 20 + (config.check?.retryForMs ?? 0);
}

/** How long its run may take: the window and the drain, or a generous bound on a count of requests. */
function runBoundMs(config: LoadConfig): number {
  const s = config.shape;
  const bound = s.kind === "closed-loop" ? s.warmupMs + s.durationMs + s.drainMs : (s.warmupRequests + s.requests) * 100;
  return bound + 30_000;
}

export async function measurePath(
  label: string,
  config: LoadConfig,
  pids: PidGroups,
  hz: number,
  teardown: Teardown,
  hooks: WindowHooks = {},
): Promise<PathResult> {
  const worker = WorkerProcess.start(`load ${label}`, new URL("./load-worker.ts", import.meta.url), config);
  teardown.add(`load worker ${label}`, () => worker.stop());
  const all = (): PidGroups => ({ ...pids, load: [worker.pid] });
  let before: ReturnType<typeof sampleGroupTicks> | undefined;
  let after: ReturnType<typeof sampleGroupTicks> | undefined;
  let machine: Array<number | undefined> = [];
  // Sampled as the event line arrives: at most a few ms after the worker's own window edge, against a
  // window of seconds.
  worker.onEvent((e) => {
    if (e.event === "window-start") {
      before = sampleGroupTicks(all());
      machine = [machineBusyTicks()];
      hooks.onWindowStart?.();
    } else if (e.event === "window-end") {
      after = sampleGroupTicks(all());
      machine.push(machineBusyTicks());
      hooks.onWindowEnd?.();
    }
  });
  try {
    await worker.next("ready", readyBoundMs(config));
    const { result } = (await worker.next("result", runBoundMs(config))) as unknown as { result: LoadResult };
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
