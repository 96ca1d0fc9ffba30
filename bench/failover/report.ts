// The table of `npm run bench -- --failover`.
import type { FailoverReport, FailoverVariant } from "./failover.js";

export function formatFailoverTable(report: FailoverReport): string {
  const lines = [
    "acked: acknowledged writes (with WAIT: by the replica too); lost: acked writes the promoted replica lacks;",
    "no ack: writes whose WAIT timed out with no replica (the caller is told: not acknowledged, not lost)",
    `${report.writers} writers, one new key each per write, ${report.writeMs} ms of writes; the replication link broken for the last ${report.lagMs} ms, then the primary SIGKILLed; WAIT timeout ${report.waitTimeoutMs} ms`,
    "",
    `${"variant".padEnd(16)} ${"acked".padStart(8)} ${"lost".padStart(6)} ${"lost/100k".padStart(10)} ${"no ack".padStart(7)} ${"rate/s".padStart(8)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} ${"promotion ms".padStart(12)}`,
  ];
  for (const t of report.trials) {
    lines.push(
      `${t.variant.padEnd(16)} ${String(t.acknowledged).padStart(8)} ${String(t.lost).padStart(6)} ${((t.lost / Math.max(1, t.acknowledged)) * 100_000).toFixed(1).padStart(10)} ${String(t.unreplicated).padStart(7)} ${String(t.ratePerS).padStart(8)} ${t.latencyMs.p50.toFixed(2).padStart(7)} ${t.latencyMs.p99.toFixed(2).padStart(7)} ${String(t.promotionMs).padStart(12)}`,
    );
  }
  const of = (v: FailoverVariant) => report.trials.filter((t) => t.variant === v);
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);
  const plain = of("write");
  const waited = of("write + WAIT 1");
  const rate = (ts: typeof plain) => sum(ts.map((t) => t.ratePerS)) / Math.max(1, ts.length);
  lines.push(
    "",
    `lost in all: write ${sum(plain.map((t) => t.lost))} of ${sum(plain.map((t) => t.acknowledged))}; write + WAIT 1 ${sum(waited.map((t) => t.lost))} of ${sum(waited.map((t) => t.acknowledged))}`,
    `rate ratio (write + WAIT 1) / write: ${(rate(waited) / Math.max(1, rate(plain))).toFixed(2)}`,
  );
  lines.push("", "keyed POSTs through the gateway (each its own Idempotency-Key), 32 clients, a primary with one replica:");
  lines.push(
    `${"REDIS_WAIT_REPLICAS".padEnd(20)} ${"rate/s".padStart(8)} ${"errors".padStart(7)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)}`,
  );
  for (const k of report.keyed)
    lines.push(
      `${String(k.waitReplicas).padEnd(20)} ${String(k.rate).padStart(8)} ${String(k.errors).padStart(7)} ${k.latencyMs.p50.toFixed(2).padStart(7)} ${k.latencyMs.p99.toFixed(2).padStart(7)}`,
    );
  const mean = (w: number) => {
    const xs = report.keyed.filter((k) => k.waitReplicas === w).map((k) => k.rate);
    return xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  };
  lines.push(`rate ratio REDIS_WAIT_REPLICAS=1 / 0: ${(mean(1) / Math.max(1, mean(0))).toFixed(2)}`);
  return lines.join("\n");
}
