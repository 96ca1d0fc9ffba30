import type { SideCounts, WaveLimits, WaveTotals } from "./wave.js";

/** What a wave's counts say now: a breach (roll back), the window's end (complete), or nothing yet. */
export type Verdict = { kind: "breach"; detail: string } | { kind: "complete" } | undefined;

/** Requests' share of errors, 0 with no request (docs/admin-api.md: "with no baseline request yet, … 0"). */
export function errorRate(requests: number, errors: number): number {
  return requests > 0 ? errors / requests : 0;
}

/** One side's counts as the API shows them, the rate rounded to 4 decimals. */
export function side(requests: number, errors: number): SideCounts {
  return { requests, errors, errorRate: Math.round(errorRate(requests, errors) * 10_000) / 10_000 };
}

/**
 * The wave's verdict. A breach: once the wave has `minRequests` requests, its error rate exceeds the
 * baseline's by more than `maxErrorRateIncrease`; checked at every look, not only at the window's end, and
 * before it (a wave that breaches as its window ends is rolled back, not completed).
 */
export function judge(t: WaveTotals, limits: WaveLimits, nowMs: number): Verdict {
  if (t.waveRequests >= limits.minRequests) {
    const wave = errorRate(t.waveRequests, t.waveErrors);
    const base = errorRate(t.baseRequests, t.baseErrors);
    const increase = wave - base;
    if (increase > limits.maxErrorRateIncrease) {
      return {
        kind: "breach",
        detail:
          `error rate ${wave.toFixed(2)} against ${base.toFixed(2)} ` +
          `(+${increase.toFixed(2)} > ${limits.maxErrorRateIncrease}) after ${t.waveRequests} requests`,
      };
    }
  }
  return nowMs >= limits.watchUntilMs ? { kind: "complete" } : undefined;
}
