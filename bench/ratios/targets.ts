// The performance targets of the default run, each read from figures of the same run: the gateway against
// the baselines it runs next to (the raw IQ round trip for the XMPP path, a bare proxy for the pass-through),
// loaded and unloaded.
import { target, type Target } from "../common/targets.js";
import type { PathResult } from "./report.js";

export const PATH_TARGETS = {
  /** (b): the gateway's CPU per request at most Prosody's, in the same path. */
  xmppGatewayCpuAtMostProsodys: 1,
  /** Rate of (b) over rate of (a). */
  xmppRateRatioAtLeast: 0.65,
  /** (d): the gateway's CPU per request at most this many times the bare proxy's in (c). */
  httpGatewayCpuAtMostTimesProxy: 2,
  /** Rate of (d) over rate of (c). */
  httpRateRatioAtLeast: 0.5,
  /** Unloaded, what the XMPP path adds to a raw IQ round trip, at p50 and at p99. */
  unloadedXmppAddsAtMostMs: { p50: 1, p99: 3 },
  /** Unloaded, what the pass-through adds to the bare proxy, at p50. */
  unloadedHttpAddsAtMostMs: { p50: 0.5 },
} as const;

export interface PathsMeasured {
  a: PathResult;
  b: PathResult;
  c: PathResult;
  d: PathResult;
  /** The same paths unloaded; null when not measured (--no-latency). */
  unloaded: { a: PathResult; b: PathResult; c: PathResult; d: PathResult } | null;
}

const rateRatio = (path: PathResult, baseline: PathResult): number =>
  baseline.load.rate > 0 ? path.load.rate / baseline.load.rate : Number.NaN;

const cpu = (p: PathResult, process: string): number => p.cpuMsPerRequest[process] ?? Number.NaN;

/** One line per target; `caveat`, when given, goes on every line (e.g. a profiled, not comparable, run). */
export function pathTargets(m: PathsMeasured, caveat?: string): Target[] {
  const T = PATH_TARGETS;
  const u = m.unloaded;
  const added = (path: PathResult | undefined, baseline: PathResult | undefined, q: "p50" | "p99"): number | null =>
    path && baseline ? path.load.latencyMs[q] - baseline.load.latencyMs[q] : null;
  const extra = caveat ? { caveat } : {};
  return [
    target({
      name: "XMPP path (b): gateway cpu ms per request",
      measured: cpu(m.b, "gateway"),
      comparison: "<=",
      bound: cpu(m.b, "prosody") * T.xmppGatewayCpuAtMostProsodys,
      unit: "cpu ms",
      boundFrom: "Prosody's in (b)",
      ...extra,
    }),
    target({
      name: "XMPP path: rate b/a",
      measured: rateRatio(m.b, m.a),
      comparison: ">=",
      bound: T.xmppRateRatioAtLeast,
      unit: "",
      ...extra,
    }),
    target({
      name: "pass-through (d): gateway cpu ms per request",
      measured: cpu(m.d, "gateway"),
      comparison: "<=",
      bound: cpu(m.c, "proxy") * T.httpGatewayCpuAtMostTimesProxy,
      unit: "cpu ms",
      boundFrom: `${T.httpGatewayCpuAtMostTimesProxy} x the bare proxy's in (c)`,
      ...extra,
    }),
    target({
      name: "pass-through: rate d/c",
      measured: rateRatio(m.d, m.c),
      comparison: ">=",
      bound: T.httpRateRatioAtLeast,
      unit: "",
      ...extra,
    }),
    target({
      name: "unloaded: XMPP path adds at p50 (b - a)",
      measured: added(u?.b, u?.a, "p50"),
      comparison: "<=",
      bound: T.unloadedXmppAddsAtMostMs.p50,
      unit: "ms",
      ...extra,
    }),
    target({
      name: "unloaded: XMPP path adds at p99 (b - a)",
      measured: added(u?.b, u?.a, "p99"),
      comparison: "<=",
      bound: T.unloadedXmppAddsAtMostMs.p99,
      unit: "ms",
      ...extra,
    }),
    target({
      name: "unloaded: pass-through adds at p50 (d - c)",
      measured: added(u?.d, u?.c, "p50"),
      comparison: "<=",
      bound: T.unloadedHttpAddsAtMostMs.p50,
      unit: "ms",
      ...extra,
    }),
  ];
}
