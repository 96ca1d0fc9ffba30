// The result of one bench run: the printed table and the JSON file.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { CpuSeconds } from "./cpu.js";
import type { LoadResult } from "./load.js";

/** Processes whose CPU is measured, in table order. */
export const PROCESSES = ["gateway", "prosody", "redis", "devices", "load"] as const;

export const TARGETS = { ratioAtLeast: 0.6, p99DeltaAtMostMs: 10 } as const;

export interface PathResult {
  label: string;
  load: LoadResult;
  /** CPU seconds per process during the measured window; null where the process did not exist. */
  cpuS: CpuSeconds;
  /** The same divided by the requests completed in the window. */
  cpuMsPerRequest: CpuSeconds;
  /** CPU seconds the rest of the machine used in the window: well above zero means the run was contended. */
  otherCpuS: number | null;
}

export interface BenchReport {
  startedAt: string;
  machine: { cpus: number; node: string; clockTicksPerSecond: number };
  settings: { durationS: number; warmupS: number; concurrency: number; devices: number };
  arrangement: Record<string, string>;
  a: PathResult;
  b: PathResult;
  comparison: { ratio: number; p99DeltaMs: number; targets: typeof TARGETS };
}

export function perRequest(cpuS: CpuSeconds, completed: number): CpuSeconds {
  const out: CpuSeconds = {};
  for (const [name, s] of Object.entries(cpuS)) out[name] = s === null || completed === 0 ? null : (s * 1000) / completed;
  return out;
}

export function compare(a: PathResult, b: PathResult): BenchReport["comparison"] {
  return {
    ratio: a.load.rate > 0 ? b.load.rate / a.load.rate : Number.NaN,
    p99DeltaMs: b.load.latencyMs.p99 - a.load.latencyMs.p99,
    targets: TARGETS,
  };
}

const fixed = (n: number | null | undefined, digits: number): string => (n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits));

function row(p: PathResult): string {
  const cpu = PROCESSES.map((name) => fixed(p.cpuS[name], 2)).join("/");
  return [
    p.label.padEnd(28),
    fixed(p.load.rate, 0).padStart(7),
    fixed(p.load.latencyMs.p50, 2).padStart(8),
    fixed(p.load.latencyMs.p99, 2).padStart(8),
    String(p.load.errors).padStart(7),
    `  ${cpu}`,
    `  (other processes: ${fixed(p.otherCpuS, 2)})`,
  ].join("");
}

function cpuRow(p: PathResult): string {
  return p.label.padEnd(28) + PROCESSES.map((name) => fixed(p.cpuMsPerRequest[name], 3).padStart(9)).join("");
}

export function formatTable(r: BenchReport): string {
  const sign = r.comparison.p99DeltaMs >= 0 ? "+" : "";
  const lines = [
    `${r.settings.concurrency} outstanding over ${r.settings.devices} devices, ${r.settings.warmupS} s warm-up, ` +
      `${r.settings.durationS} s measured per path, ${r.machine.cpus} cores, node ${r.machine.node}`,
    "",
    `${"path".padEnd(28)}${"rate/s".padStart(7)}${"p50 ms".padStart(8)}${"p99 ms".padStart(8)}${"errors".padStart(7)}  cpu-s ${PROCESSES.join("/")}`,
    row(r.a),
    row(r.b),
    `ratio b/a: ${fixed(r.comparison.ratio, 2)}   p99 b - a: ${sign}${fixed(r.comparison.p99DeltaMs, 1)} ms   ` +
      `(targets: >= ${TARGETS.ratioAtLeast}, <= +${TARGETS.p99DeltaAtMostMs} ms)`,
    "",
    `${"cpu ms per request".padEnd(28)}${PROCESSES.map((n) => n.padStart(9)).join("")}`,
    cpuRow(r.a),
    cpuRow(r.b),
  ];
  for (const p of [r.a, r.b]) {
    const notes = [];
    if (p.load.unfinished > 0) notes.push(`${p.load.unfinished} requests still outstanding at the end`);
    if (p.load.errorSamples.length > 0) notes.push(`errors seen: ${p.load.errorSamples.join(" | ")}`);
    if (notes.length > 0) lines.push(`${p.label}: ${notes.join("; ")}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Writes bench/results/bench-<timestamp>.json and returns its path. */
export async function writeReport(r: BenchReport, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `bench-${r.startedAt.replace(/[:.]/g, "-")}.json`);
  await writeFile(file, `${JSON.stringify(r, null, 2)}\n`);
  return file;
}
