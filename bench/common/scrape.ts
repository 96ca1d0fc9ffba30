// Reads a gateway's own figures from its /metrics (Prometheus text format), as Prometheus would: one
// scrape, several metrics, each summed over its label sets. The format is read by the tests' parser.
import { parseMetrics } from "../../test/helpers/metrics.js";

/** The value of each named metric, summed over all its series; NaN for a metric the scrape did not have. */
export async function scrapeMetrics(gatewayUrl: string, names: readonly string[], timeoutMs = 5_000): Promise<Record<string, number>> {
  const res = await fetch(`${gatewayUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /metrics: status ${res.status}: ${text.slice(0, 200)}`);
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, Number.NaN]));
  for (const { name, value } of parseMetrics(text)) {
    if (!(name in out)) continue;
    out[name] = Number.isNaN(out[name] ?? Number.NaN) ? value : (out[name] ?? 0) + value;
  }
  return out;
}
