// Memory and open-file limits of a process, from /proc: the kernel's own figures, readable for any child
// without its cooperation (and without waking its event loop, however busy it is).
import { readFileSync, writeFileSync } from "node:fs";

export interface Memory {
  /** Resident set size now (VmRSS), in bytes. */
  rssBytes: number;
  /** The highest resident set size since the process started (VmHWM), in bytes: a peak no sampling can miss. */
  peakRssBytes: number;
}

/** VmRSS and VmHWM of a process, or undefined when it is gone. */
export function memoryOf(pid: number): Memory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const kib = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) * 1024 : Number.NaN;
  };
  return { rssBytes: kib("VmRSS"), peakRssBytes: kib("VmHWM") };
}

/**
 * Starts a new VmHWM period (Linux: "5" to /proc/PID/clear_refs sets the peak to the RSS of now), so that the
 * peak read at the end of a phase is that phase's. False when not allowed (then VmHWM stays the lifetime peak).
 */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** The soft limit on open files of a process ("Max open files"), or undefined when unreadable or unlimited. */
export function openFilesLimit(pid: number | "self" = "self"): number | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = Number(line?.split(/\s{2,}/)[1]);
    return Number.isFinite(soft) ? soft : undefined;
  } catch {
    return undefined;
  }
}

export const MIB = 1024 * 1024;

/**
 * Connections the kernel dropped because a listener's accept queue was full (TcpExt ListenOverflows), for
 * the whole network namespace: other processes' listeners count too. Undefined when unreadable.
 */
export function listenOverflows(): number | undefined {
  try {
    const lines = readFileSync("/proc/net/netstat", "utf8").split("\n");
    const header = lines.findIndex((l) => l.startsWith("TcpExt:"));
    const names = lines[header]?.split(" ") ?? [];
    const values = lines[header + 1]?.split(" ") ?? [];
    const i = names.indexOf("ListenOverflows");
    return i > 0 ? Number(values[i]) : undefined;
  } catch {
    return undefined;
  }
}
