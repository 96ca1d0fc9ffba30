// Reads a gateway's own figures from its /metrics (Prometheus text format), as Prometheus would: one
// scrape, several metrics, each summed over its label sets.

/** The value of each named metric, summed over all its series; NaN for a metric the scrape did not have. */
export async function scrapeMetrics(gatewayUrl: string, names: readonly string[], timeoutMs = 5_000): Promise<Record<string, number>> {
  const res = await fetch(`${gatewayUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET /metrics: status ${res.status}: ${text.slice(0, 200)}`);
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, Number.NaN]));
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const end = line.search(/[ {]/);
    const name = end > 0 ? line.slice(0, end) : "";
    if (!(name in out)) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    out[name] = Number.isNaN(out[name] ?? Number.NaN) ? value : (out[name] ?? 0) + value;
  }
  return out;
}
