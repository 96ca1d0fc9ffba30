// Runs one path, or two in alternating slices: starts a load worker per path, samples every process's CPU
// when a worker opens and closes a measured window, and collects the workers' results.
import type { Teardown } from "../../test/helpers/stack.js";
import { addCpuSeconds, cpuSecondsBetween, machineBusyTicks, sampleGroupTicks, type CpuSeconds, type PidGroups } from "../common/cpu.js";
import type { LoadResult } from "./load.js";
import type { LoadConfig } from "./load-worker.js";
import { perRequest, type PathResult } from "./report.js";
import { WorkerProcess } from "../common/worker-process.js";

/** Called as the measured window opens and closes (after the CPU samples), e.g. to profile just the window. */
export interface WindowHooks {
  onWindowStart?(): void;
  onWindowEnd?(): void;
}

/** One path to measure: its load, the processes whose CPU it counts (its load worker is added), its hooks. */
export interface PathJob {
  label: string;
  config: LoadConfig;
  pids: PidGroups;
  hooks?: WindowHooks;
}

/** How long the worker may take to get ready: its device check, and the agents' logins it may wait for. */
function readyBoundMs(config: LoadConfig): number {
  return 30_000 + config.ids.length * 20 + (config.check?.retryForMs ?? 0);
}

/** How long one window may take with its warm-up and drain, or a generous bound on a count of requests. */
function windowBoundMs(config: LoadConfig): number {
  const s = config.shape;
  const bound = s.kind === "sequential" ? (s.warmupRequests + s.requests) * 100 : s.warmupMs + s.durationMs + s.drainMs;
  return bound + 30_000;
}

/** CPU seconds of a path's processes, added up over its measured windows, and the rest of the machine's. */
class WindowCpu {
  private before: ReturnType<typeof sampleGroupTicks> | undefined;
  private machineBefore: number | undefined;
  /** Per process; null once it was absent at any window edge. */
  private total: CpuSeconds = {};
  private machineS: number | null = 0;
  windows = 0;

  constructor(
    private readonly groups: () => PidGroups,
    private readonly hz: number,
  ) {}

  open(): void {
    this.before = sampleGroupTicks(this.groups());
    this.machineBefore = machineBusyTicks();
  }

  close(): void {
    const before = this.before;
    if (!before) return;
    const window = cpuSecondsBetween(before, sampleGroupTicks(this.groups()), this.hz);
    const machine = machineBusyTicks();
    this.total = this.windows === 0 ? window : addCpuSeconds(this.total, window);
    this.machineS =
      this.machineS === null || this.machineBefore === undefined || machine === undefined
        ? null
        : this.machineS + (machine - this.machineBefore) / this.hz;
    this.before = undefined;
    this.windows++;
  }

  /** CPU seconds per process over the windows; null where a process was absent at an edge. */
  cpuSeconds(): CpuSeconds {
    return this.total;
  }

  /** Machine-wide busy CPU minus ours: what other processes (other sessions, the kernel) took meanwhile. */
  otherCpuS(ours: CpuSeconds): number | null {
    if (this.machineS === null) return null;
    const mine = Object.values(ours).reduce<number>((sum, s) => sum + (s ?? 0), 0);
    return Math.max(0, this.machineS - mine);
  }
}

interface Measuring {
  job: PathJob;
  worker: WorkerProcess;
  cpu: WindowCpu;
}

/** Starts a path's load worker, with its CPU sampled at each window edge the worker reports. */
function startMeasuring(job: PathJob, hz: number, teardown: Teardown): Measuring {
  const worker = WorkerProcess.start(`load ${job.label}`, new URL("./load-worker.ts", import.meta.url), job.config);
  teardown.add(`load worker ${job.label}`, () => worker.stop());
  const cpu = new WindowCpu(() => ({ ...job.pids, load: [worker.pid] }), hz);
  // Sampled as the event line arrives: at most a few ms after the worker's own window edge, against a
  // window of seconds.
  worker.onEvent((e) => {
    if (e.event === "window-start") {
      cpu.open();
      job.hooks?.onWindowStart?.();
    } else if (e.event === "window-end") {
      cpu.close();
      job.hooks?.onWindowEnd?.();
    }
  });
  return { job, worker, cpu };
}

/** The worker's result, with the CPU of its windows. */
async function finish(m: Measuring, windows: number): Promise<PathResult> {
  const { result } = (await m.worker.next("result", windowBoundMs(m.job.config))) as unknown as { result: LoadResult };
  if (m.cpu.windows !== windows) throw new Error(`${m.job.label}: the worker reported ${m.cpu.windows} measured windows, not ${windows}`);
  const cpuS = m.cpu.cpuSeconds();
  return {
    label: m.job.label,
    load: result,
    cpuS,
    cpuMsPerRequest: perRequest(cpuS, result.completed),
    otherCpuS: m.cpu.otherCpuS(cpuS),
  };
}

export async function measurePath(job: PathJob, hz: number, teardown: Teardown): Promise<PathResult> {
  const m = startMeasuring(job, hz, teardown);
  try {
    await m.worker.next("ready", readyBoundMs(job.config));
    return await finish(m, 1);
  } finally {
    await m.worker.stop();
  }
}

/**
 * Which of two paths runs each slice: first, second, second, first, and so on (an ABBA order), so that each
 * has `slices` windows and a steady drift of the machine's speed over the run weighs on both alike.
 */
export function alternation(slices: number): Array<0 | 1> {
  const order: Array<0 | 1> = [];
  for (let i = 0; i < 2 * slices; i++) order.push(i % 4 === 0 || i % 4 === 3 ? 0 : 1);
  return order;
}

/**
 * Two paths, each with a load worker of shape "slices", measured in alternating windows (alternation): a
 * busy spell of the machine, which moves every process's CPU per request, then falls on both terms of their
 * ratio rather than on one. Both workers stay up throughout, so the idle one's code stays warm.
 */
export async function measureAlternating(
  first: PathJob,
  second: PathJob,
  hz: number,
  teardown: Teardown,
): Promise<[PathResult, PathResult]> {
  const slices = (job: PathJob): number => (job.config.shape.kind === "slices" ? job.config.shape.slices : 0);
  const n = slices(first);
  if (n < 1 || slices(second) !== n) throw new Error(`${first.label} and ${second.label}: both need shape "slices", with the same count`);
  const pair = [startMeasuring(first, hz, teardown), startMeasuring(second, hz, teardown)] as const;
  try {
    await Promise.all(pair.map((m) => m.worker.next("ready", readyBoundMs(m.job.config))));
    for (const which of alternation(n)) {
      const m = pair[which];
      m.worker.send("slice");
      await m.worker.next("slice-done", windowBoundMs(m.job.config));
    }
    return [await finish(pair[0], n), await finish(pair[1], n)];
  } finally {
    await Promise.all(pair.map((m) => m.worker.stop()));
  }
}
