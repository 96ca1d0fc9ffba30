// The result of one bench run: the printed table and the JSON file.
import type { CpuSeconds } from "../common/cpu.js";
import type { LoadResult } from "./load.js";

/** Processes whose CPU is measured, in table order. */
export const PROCESSES = ["gateway", "proxy", "prosody", "redis", "devices", "load"] as const;

/** The operations issue's targets: the XMPP path against the raw IQ round trip, the pass-through against a bare proxy. */
export const TARGETS = { ratioAtLeast: 0.6, p99DeltaAtMostMs: 10 } as const;
export const HTTP_TARGETS = { ratioAtLeast: 0.8 } as const;

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
  /** Raw IQ round trip: the baseline of (b). */
  a: PathResult;
  /** The gateway's XMPP path. */
  b: PathResult;
  /** Bare http-proxy-3 in front of the devices' HTTP servers: the baseline of (d). */
  c: PathResult;
  /** The gateway's HTTP pass-through to the same servers. */
  d: PathResult;
  /** b against a (the key names of the first version of this report). */
  comparison: Comparison<typeof TARGETS>;
  /** d against c. */
  httpComparison: Comparison<typeof HTTP_TARGETS>;
}

export interface Comparison<T extends { ratioAtLeast: number; p99DeltaAtMostMs?: number }> {
  /** Rate of the path over the rate of its baseline. */
  ratio: number;
  /** p99 of the path minus p99 of its baseline. */
  p99DeltaMs: number;
  targets: T;
  /** Whether this run met every target (informative: timings are reported, never asserted). */
  meetsTargets: boolean;
}

export function perRequest(cpuS: CpuSeconds, completed: number): CpuSeconds {
  const out: CpuSeconds = {};
  for (const [name, s] of Object.entries(cpuS)) out[name] = s === null || completed === 0 ? null : (s * 1000) / completed;
  return out;
}

/** `path` against `baseline`. */
export function compare<T extends { ratioAtLeast: number; p99DeltaAtMostMs?: number }>(
  baseline: PathResult,
  path: PathResult,
  targets: T,
): Comparison<T> {
  const ratio = baseline.load.rate > 0 ? path.load.rate / baseline.load.rate : Number.NaN;
  const p99DeltaMs = path.load.latencyMs.p99 - baseline.load.latencyMs.p99;
  const meetsTargets = ratio >= targets.ratioAtLeast && (targets.p99DeltaAtMostMs === undefined || p99DeltaMs <= targets.p99DeltaAtMostMs);
  return { ratio, p99DeltaMs, targets, meetsTargets };
}

const fixed = (n: number | null | undefined, digits: number): string =>
  n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits);

const LABEL_WIDTH = 31;

function row(p: PathResult): string {
  const cpu = PROCESSES.map((name) => fixed(p.cpuS[name], 2)).join("/");
  return [
    p.label.padEnd(LABEL_WIDTH),
    fixed(p.load.rate, 0).padStart(7),
    fixed(p.load.latencyMs.p50, 2).padStart(8),
    fixed(p.load.latencyMs.p99, 2).padStart(8),
    String(p.load.errors).padStart(7),
    `  ${cpu}`,
    `  (other processes: ${fixed(p.otherCpuS, 2)})`,
  ].join("");
}

function cpuRow(p: PathResult): string {
  return p.label.padEnd(LABEL_WIDTH) + PROCESSES.map((name) => fixed(p.cpuMsPerRequest[name], 3).padStart(9)).join("");
}

function comparisonLine(name: string, c: Comparison<{ ratioAtLeast: number; p99DeltaAtMostMs?: number }>): string {
  const [path, baseline] = name.split("/");
  const sign = c.p99DeltaMs >= 0 ? "+" : "";
  const targets = [`>= ${c.targets.ratioAtLeast}`];
  if (c.targets.p99DeltaAtMostMs !== undefined) targets.push(`p99 <= +${c.targets.p99DeltaAtMostMs} ms`);
  return (
    `ratio ${name}: ${fixed(c.ratio, 2)}   p99 ${path} - ${baseline}: ${sign}${fixed(c.p99DeltaMs, 1)} ms   ` +
    `(targets: ${targets.join(", ")}: ${c.meetsTargets ? "met" : "missed"} in this run)`
  );
}

export function formatTable(r: BenchReport): string {
  const paths = [r.a, r.b, r.c, r.d];
  const lines = [
    `${r.settings.concurrency} outstanding over ${r.settings.devices} devices, ${r.settings.warmupS} s warm-up, ` +
      `${r.settings.durationS} s measured per path, ${r.machine.cpus} cores, node ${r.machine.node}`,
    "",
    `${"path".padEnd(LABEL_WIDTH)}${"rate/s".padStart(7)}${"p50 ms".padStart(8)}${"p99 ms".padStart(8)}${"errors".padStart(7)}  cpu-s ${PROCESSES.join("/")}`,
    row(r.a),
    row(r.b),
    comparisonLine("b/a", r.comparison),
    row(r.c),
    row(r.d),
    comparisonLine("d/c", r.httpComparison),
    "",
    `${"cpu ms per request".padEnd(LABEL_WIDTH)}${PROCESSES.map((n) => n.padStart(9)).join("")}`,
    ...paths.map(cpuRow),
  ];
  for (const p of paths) {
    const notes = [];
    if (p.load.unfinished > 0) notes.push(`${p.load.unfinished} requests still outstanding at the end`);
    if (p.load.errorSamples.length > 0) notes.push(`errors seen: ${p.load.errorSamples.join(" | ")}`);
    if (notes.length > 0) lines.push(`${p.label}: ${notes.join("; ")}`);
  }
  return `${lines.join("\n")}\n`;
}
