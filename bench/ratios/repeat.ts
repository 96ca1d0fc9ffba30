// `--repeat N`: the default run N times over, each with its own processes, and the targets read on the
// median of the N runs' figures. One run on a shared machine moves by tens of percent with what else runs
// (docs/benchmark.md); the median of three or five is what a change is judged by.
import { target, type Target } from "../common/targets.js";
import type { BenchReport } from "./report.js";

export interface RepeatedReport {
  startedAt: string;
  /** Every run's own report, in the order they ran. */
  runs: BenchReport[];
  /** Each target of the runs, its measured value and its bound the median of theirs (a measured bound too). */
  targets: Target[];
}

/** The median of the numbers that are finite; null when none is. */
export function median(values: ReadonlyArray<number | null>): number | null {
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return null;
  const mid = Math.floor(finite.length / 2);
  return finite.length % 2 === 1 ? (finite[mid] as number) : ((finite[mid - 1] as number) + (finite[mid] as number)) / 2;
}

/**
 * The targets on the runs' medians: every run lists the same targets in the same order (pathTargets);
 * a target none of the runs measured stays "not measured".
 */
export function medianTargets(runs: ReadonlyArray<{ targets: readonly Target[] }>): Target[] {
  const first = runs[0]?.targets ?? [];
  return first.map((t, i) => {
    const of = runs.map((r) => r.targets[i]);
    if (of.some((o) => o?.name !== t.name)) throw new Error(`the runs' targets differ at ${i} (${t.name})`);
    const measured = median(of.map((o) => o?.measured ?? null));
    const bound = median(of.map((o) => o?.bound ?? null)) ?? t.bound;
    const { status: _status, caveat, ...fields } = t;
    const caveats = [...new Set(of.map((o) => o?.caveat).filter((c): c is string => c !== undefined))];
    return target({ ...fields, measured, bound, ...(caveat !== undefined || caveats.length > 0 ? { caveat: caveats.join("; ") } : {}) });
  });
}
