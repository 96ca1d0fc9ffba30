// The Prometheus text exposition format (version 0.0.4) as tests read it: one sample per line,
// `name{label="value",...} value [timestamp]`, comments and # HELP / # TYPE lines skipped.
// Label values are unescaped (\\, \", \n), so a value holding a comma, a brace or a quote is read whole.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Every sample of a scrape, in order. */
export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const sample = parseLine(line);
    if (sample) samples.push(sample);
  }
  return samples;
}

function parseLine(line: string): Sample | undefined {
  const nameEnd = line.search(/[ {]/);
  if (nameEnd <= 0) return undefined;
  const name = line.slice(0, nameEnd);
  const labels: Record<string, string> = {};
  let i = nameEnd;
  if (line[i] === "{") {
    i++;
    for (;;) {
      while (line[i] === " " || line[i] === ",") i++;
      if (line[i] === "}") {
        i++;
        break;
      }
      const eq = line.indexOf("=", i);
      if (eq < 0 || line[eq + 1] !== '"') return undefined;
      const label = line.slice(i, eq).trim();
      let value = "";
      let j = eq + 2;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === "\\") {
          j++;
          value += line[j] === "n" ? "\n" : (line[j] ?? "");
        } else {
          value += line[j];
        }
      }
      if (j >= line.length) return undefined;
      labels[label] = value;
      i = j + 1;
    }
  }
  // The value, then an optional timestamp.
  const [value] = line.slice(i).trim().split(/\s+/);
  if (value === undefined || value === "") return undefined;
  return { name, labels, value: Number(value) };
}

/**
 * The sum of the samples named `name` whose labels include `labels` (0 when there are none), e.g.
 * metricValue(text, "gateway_replies_forwarded_total", { kind: "iq" }).
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels);
  return parseMetrics(text)
    .filter((s) => s.name === name && wanted.every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/** One GET of `url`/metrics, summed as metricValue does. */
export async function scrapeMetric(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}/metrics: status ${res.status}: ${text.slice(0, 200)}`);
  return metricValue(text, name, labels);
}
