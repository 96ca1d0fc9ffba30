// The performance targets a run is read against: one line each, with the measured value, the bound and
// whether this run met it. Informative only: timings are reported, never asserted.

export type TargetStatus = "met" | "missed" | "not measured";

export interface Target {
  /** What is compared, in words ("XMPP path: rate b/a"). */
  name: string;
  /** The value this run measured; null when the run did not measure it (then the status says so). */
  measured: number | null;
  comparison: "<=" | ">=" | "<";
  bound: number;
  /** "", "ms", "MiB", "requests", "cpu ms" (per request): how measured and bound read. */
  unit: string;
  /** Where the bound comes from when it is measured too ("Prosody's, path (b)"). */
  boundFrom?: string;
  status: TargetStatus;
  /** Why this run's figure is not quite the target's (another load, another heap), when it is not. */
  caveat?: string;
}

export function target(fields: Omit<Target, "status">): Target {
  const { measured, comparison, bound } = fields;
  let status: TargetStatus = "not measured";
  if (measured !== null && Number.isFinite(measured) && Number.isFinite(bound)) {
    const met = comparison === "<=" ? measured <= bound : comparison === ">=" ? measured >= bound : measured < bound;
    status = met ? "met" : "missed";
  }
  return { ...fields, status };
}

function digitsFor(unit: string): number {
  if (unit === "MiB" || unit === "requests") return 0;
  if (unit === "cpu ms") return 3;
  return 2;
}

function amount(n: number | null, unit: string): string {
  if (n === null || !Number.isFinite(n)) return "-";
  return `${n.toFixed(digitsFor(unit))}${unit ? ` ${unit}` : ""}`;
}

/** The "targets" section of a table: a header, then one line per target. */
export function formatTargets(targets: readonly Target[]): string[] {
  const nameWidth = Math.max(...targets.map((t) => t.name.length), "targets".length) + 2;
  const measured = targets.map((t) => amount(t.measured, t.unit));
  const measuredWidth = Math.max(...measured.map((m) => m.length), "measured".length) + 2;
  const bounds = targets.map((t) => `${t.comparison} ${amount(t.bound, t.unit)}${t.boundFrom ? ` (${t.boundFrom})` : ""}`);
  const boundWidth = Math.max(...bounds.map((b) => b.length), "target".length) + 2;
  const lines = [`${"targets".padEnd(nameWidth)}${"measured".padStart(measuredWidth)}  target`];
  targets.forEach((t, i) => {
    const caveat = t.caveat ? `  (${t.caveat})` : "";
    lines.push(
      `${t.name.padEnd(nameWidth)}${(measured[i] ?? "").padStart(measuredWidth)}  ${(bounds[i] ?? "").padEnd(boundWidth)}${t.status}${caveat}`,
    );
  });
  return lines;
}
