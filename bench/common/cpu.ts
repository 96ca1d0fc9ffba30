// CPU time per process from /proc/PID/stat (utime + stime, all threads), in clock ticks.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second (`getconf CLK_TCK`); 100 on every Linux seen, so that is the fallback. */
export function clockTicksPerSecond(): number {
  try {
    const n = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

/** utime + stime of a process in ticks, or undefined when it is gone. */
export function cpuTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm (field 2) may hold spaces and parentheses: count fields from the last ')'. The token after it
    // is field 3, so utime (14) and stime (15) are the 12th and 13th.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

export type Pids = Record<string, number | undefined>;
export type CpuSeconds = Record<string, number | null>;

export function sampleTicks(pids: Pids): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const [name, pid] of Object.entries(pids)) out[name] = pid === undefined ? undefined : cpuTicks(pid);
  return out;
}

/** Roles served by several processes (the redis-servers of a Sentinel or Cluster deployment), by role. */
export type PidGroups = Record<string, readonly number[] | undefined>;

/** sampleTicks, with each role's processes summed; undefined for a role with no process or one gone. */
export function sampleGroupTicks(groups: PidGroups): Record<string, number | undefined> {
  const out: Record<string, number | undefined> = {};
  for (const [name, pids] of Object.entries(groups)) {
    if (pids === undefined || pids.length === 0) {
      out[name] = undefined;
      continue;
    }
    const ticks = pids.map(cpuTicks);
    out[name] = ticks.some((t) => t === undefined) ? undefined : ticks.reduce<number>((sum, t) => sum + (t ?? 0), 0);
  }
  return out;
}

/** CPU seconds each process used between two samples; null where a process was absent from either. */
export function cpuSecondsBetween(
  before: Record<string, number | undefined>,
  after: Record<string, number | undefined>,
  hz: number,
): CpuSeconds {
  const out: CpuSeconds = {};
  for (const name of Object.keys(before)) {
    const a = before[name];
    const b = after[name];
    out[name] = a === undefined || b === undefined ? null : (b - a) / hz;
  }
  return out;
}

/** Two accounts of CPU seconds added up, process by process; null where either has null (a process absent). */
export function addCpuSeconds(a: CpuSeconds, b: CpuSeconds): CpuSeconds {
  const out: CpuSeconds = {};
  for (const name of Object.keys(b)) {
    const [x, y] = [a[name], b[name]];
    out[name] = x === undefined || x === null || y === null || y === undefined ? null : x + y;
  }
  return out;
}

/** Busy ticks of the whole machine (all cores) from /proc/stat: everything but idle and iowait. */
export function machineBusyTicks(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    const [, user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).map(Number);
    return [user, nice, system, irq, softirq, steal].reduce<number>((sum, n) => sum + (n ?? 0), 0);
  } catch {
    return undefined;
  }
}

/**
 * Nanoseconds a process spent on a CPU, all its threads together (/proc/PID/task/TID/schedstat, first field):
 * the scheduler's own account, fine enough to divide by a few thousand requests (clock ticks are 10 ms).
 * Undefined when the process is gone.
 */
export function cpuNanoseconds(pid: number): number | undefined {
  try {
    let sum = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        sum += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // a thread that ended meanwhile
      }
    }
    return sum;
  } catch {
    return undefined;
  }
}
