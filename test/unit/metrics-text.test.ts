// The tests' reader of the Prometheus text format (test/helpers/metrics.ts): labels matched by name and
// value, never by substring; escaped label values read whole; an optional timestamp ignored.
import assert from "node:assert/strict";
import { it } from "node:test";
import { metricValue, parseMetrics } from "../helpers/metrics.js";

const SCRAPE = [
  "# HELP gateway_replies_forwarded_total Replies forwarded.",
  "# TYPE gateway_replies_forwarded_total counter",
  'gateway_replies_forwarded_total{kind="iq"} 3',
  'gateway_replies_forwarded_total{kind="chunk"} 4',
  'gateway_replies_forwarded_total{subkind="iq"} 100',
  "gateway_replies_forwarded_total_extra 1000",
  'gateway_odd{path="a,b} \\"c\\" \\\\ d\\n"} 7 1700000000000',
  "gateway_plain 2.5",
  "",
].join("\n");

it("sums the samples of one name whose labels match exactly", () => {
  assert.equal(metricValue(SCRAPE, "gateway_replies_forwarded_total", { kind: "iq" }), 3);
  assert.equal(metricValue(SCRAPE, "gateway_replies_forwarded_total"), 107);
  assert.equal(metricValue(SCRAPE, "gateway_replies_forwarded_total", { kind: "none" }), 0);
  assert.equal(metricValue(SCRAPE, "gateway_absent"), 0);
  assert.equal(metricValue(SCRAPE, "gateway_plain"), 2.5);
});

it("reads escaped label values whole and skips a timestamp", () => {
  const odd = parseMetrics(SCRAPE).find((s) => s.name === "gateway_odd");
  assert.deepEqual(odd, { name: "gateway_odd", labels: { path: 'a,b} "c" \\ d\n' }, value: 7 });
});
