// The result of one bench run: the printed table and the JSON file.
import type { RedisKind } from "../common/args.js";
import type { CpuSeconds } from "../common/cpu.js";
import { formatTargets, type Target } from "../common/targets.js";
import type { LoadResult } from "./load.js";

/** Processes whose CPU is measured, in table order ("redis": all the redis-servers of the deployment). */
export const PROCESSES = ["gateway", "proxy", "prosody", "redis", "devices", "agent", "load"] as const;

export interface PathResult {
  label: string;
  load: LoadResult;
  /** CPU seconds per process during the measured window; null where the process did not exist. */
  cpuS: CpuSeconds;
  /** The same divided by the requests completed in the window. */
  cpuMsPerRequest: CpuSeconds;
  /** CPU seconds the rest of the machine used in the window: well above zero means the run was contended. */
  otherCpuS: number | null;
  /**
   * Connections the devices' servers accepted during the window, per request (the default run): near 0 when
   * the connections to the devices are kept alive between requests, near 1 when each request opens one.
   */
  deviceConnectionsPerRequest?: number;
}

export interface FourPaths {
  /** Raw IQ round trip: the baseline of (b). */
  a: PathResult;
  /** The gateway's XMPP path. */
  b: PathResult;
  /** Bare http-proxy-3 in front of the devices' HTTP servers: the baseline of (d). */
  c: PathResult;
  /** The gateway's HTTP pass-through to the same servers. */
  d: PathResult;
}

export interface BenchReport extends FourPaths {
  startedAt: string;
  machine: { cpus: number; node: string; clockTicksPerSecond: number };
  settings: {
    durationS: number;
    warmupS: number;
    concurrency: number;
    devices: number;
    redis: RedisKind;
    /** Slices each path's measured window is cut into, alternating with its baseline's (runs.ts). */
    slices: number;
    /** The unloaded runs' requests (one client, one at a time); null when skipped (--no-latency). */
    unloaded: { warmupRequests: number; requests: number } | null;
    /** Settings the gateway process was given beyond the bench's own (--gateway-env). */
    gatewayEnv: Record<string, string>;
  };
  arrangement: Record<string, string>;
  /** The four paths again, unloaded; null when skipped. */
  unloaded: FourPaths | null;
  /** b against a (the key names of the first version of this report). */
  comparison: Comparison;
  /** d against c. */
  httpComparison: Comparison;
  /** The performance targets (bench/ratios/targets.ts), each with this run's figure: informative, never asserted. */
  targets: Target[];
}

export interface Comparison {
  /** Rate of the path over the rate of its baseline. */
  ratio: number;
  /** p99 of the path minus p99 of its baseline. */
  p99DeltaMs: number;
}

export function perRequest(cpuS: CpuSeconds, completed: number): CpuSeconds {
  const out: CpuSeconds = {};
  for (const [name, s] of Object.entries(cpuS)) out[name] = s === null || completed === 0 ? null : (s * 1000) / completed;
  return out;
}

/** `path` against `baseline`. */
export function compare(baseline: PathResult, path: PathResult): Comparison {
  const ratio = baseline.load.rate > 0 ? path.load.rate / baseline.load.rate : Number.NaN;
  return { ratio, p99DeltaMs: path.load.latencyMs.p99 - baseline.load.latencyMs.p99 };
}

const fixed = (n: number | null | undefined, digits: number): string =>
  n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits);
const signed = (n: number, digits: number): string => (Number.isNaN(n) ? "-" : `${n >= 0 ? "+" : ""}${n.toFixed(digits)}`);

const LABEL_WIDTH = 31;
const CONNECTIONS_HEADER = "device connections opened";

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
  const cpu = PROCESSES.map((name) => fixed(p.cpuMsPerRequest[name], 3).padStart(9)).join("");
  return p.label.padEnd(LABEL_WIDTH) + cpu + fixed(p.deviceConnectionsPerRequest, 3).padStart(CONNECTIONS_HEADER.length + 2);
}

function comparisonLine(name: string, c: Comparison): string {
  const [path, baseline] = name.split("/");
  return `ratio ${name}: ${fixed(c.ratio, 2)}   p99 ${path} - ${baseline}: ${signed(c.p99DeltaMs, 1)} ms`;
}

const QUANTILES = ["p50", "p90", "p99", "max"] as const;

function latencyRow(p: PathResult): string {
  const l = p.load.latencyMs;
  return p.label.padEnd(LABEL_WIDTH) + QUANTILES.map((q) => fixed(l[q], 2).padStart(8)).join("") + String(p.load.errors).padStart(7);
}

function deltaRow(name: string, path: PathResult, baseline: PathResult): string {
  return (
    name.padEnd(LABEL_WIDTH) + QUANTILES.map((q) => signed(path.load.latencyMs[q] - baseline.load.latencyMs[q], 2).padStart(8)).join("")
  );
}

function unloadedTable(r: BenchReport): string[] {
  const u = r.unloaded;
  const s = r.settings.unloaded;
  if (!u || !s) return ["unloaded latency: not measured (--no-latency)"];
  return [
    `unloaded: one client, one request at a time, ${s.requests} timed after ${s.warmupRequests}, over the same ${r.settings.devices} devices`,
    `${"path".padEnd(LABEL_WIDTH)}${QUANTILES.map((q) => `${q} ms`.padStart(8)).join("")}${"errors".padStart(7)}`,
    latencyRow(u.a),
    latencyRow(u.b),
    deltaRow("added by the gateway (b - a)", u.b, u.a),
    latencyRow(u.c),
    latencyRow(u.d),
    deltaRow("added by the gateway (d - c)", u.d, u.c),
  ];
}

function notesOf(paths: PathResult[], qualifier: string): string[] {
  const lines: string[] = [];
  for (const p of paths) {
    const notes = [];
    if (p.load.unfinished > 0) notes.push(`${p.load.unfinished} requests still outstanding at the end`);
    if (p.load.errorSamples.length > 0) notes.push(`errors seen: ${p.load.errorSamples.join(" | ")}`);
    if (notes.length > 0) lines.push(`${p.label}${qualifier}: ${notes.join("; ")}`);
  }
  return lines;
}

export function formatTable(r: BenchReport): string {
  const paths = [r.a, r.b, r.c, r.d];
  const lines = [
    `${r.settings.concurrency} outstanding over ${r.settings.devices} devices, Redis ${r.settings.redis}, ${r.settings.warmupS} s warm-up, ` +
      `${r.settings.durationS} s measured per path, ${r.machine.cpus} cores, node ${r.machine.node}` +
      Object.entries(r.settings.gatewayEnv)
        .map(([name, value]) => `, gateway ${name}=${value}`)
        .join(""),
    "",
    `${"path".padEnd(LABEL_WIDTH)}${"rate/s".padStart(7)}${"p50 ms".padStart(8)}${"p99 ms".padStart(8)}${"errors".padStart(7)}  cpu-s ${PROCESSES.join("/")}`,
    row(r.a),
    row(r.b),
    comparisonLine("b/a", r.comparison),
    row(r.c),
    row(r.d),
    comparisonLine("d/c", r.httpComparison),
    "",
    `${"per request: cpu ms".padEnd(LABEL_WIDTH)}${PROCESSES.map((n) => n.padStart(9)).join("")}  ${CONNECTIONS_HEADER}`,
    ...paths.map(cpuRow),
    "",
    ...unloadedTable(r),
    "",
    ...formatTargets(r.targets),
    ...notesOf(paths, ""),
    ...notesOf(r.unloaded ? [r.unloaded.a, r.unloaded.b, r.unloaded.c, r.unloaded.d] : [], ", unloaded"),
  ];
  return `${lines.join("\n")}\n`;
}
