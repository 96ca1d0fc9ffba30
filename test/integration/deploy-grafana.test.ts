// The Grafana dashboard and the Prometheus alerts, each checked by the tool that will consume it, or the
// closest one that runs here without a Grafana server:
//
//   deploy/grafana                                         @grafana/schema types; promtool check rules on
//                                                          every query; names checked on a live scrape
//   deploy/prometheus/alerts.yml                           names checked on the same live scrape
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { after, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { createMetrics } from "../../gateway/metrics/metrics.js";
import { list, obj, read, root, run, str, type Json } from "../helpers/deploy-kit.js";
import { startGatewayWithStack } from "../helpers/gateway-process.js";
import { references } from "../helpers/promql-refs.js";
import { Teardown } from "../helpers/stack.js";
import { typecheck } from "../helpers/typecheck.js";

const teardown = new Teardown();
after(() => teardown.run());

interface Query {
  where: string;
  expr: string;
}

const dashboardText = read("deploy/grafana/dashboards/gateway-migration.json");
const dashboard = JSON.parse(dashboardText) as {
  panels: Array<
    Json & { id: number; type: string; title: string; targets?: Array<Json & { expr: string; refId: string }>; panels?: unknown[] }
  >;
  templating: { list: Json[] };
};

type DashboardPanel = (typeof dashboard.panels)[number];
/** Every panel, those inside collapsed rows included. */
const allPanels = (): DashboardPanel[] => dashboard.panels.flatMap((p) => [p, ...((p.panels ?? []) as DashboardPanel[])]);

function dashboardQueries(): Query[] {
  return allPanels().flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr })));
}

function alertQueries(): Query[] {
  const rules = obj(parseYaml(read("deploy/prometheus/alerts.yml")), "alerts.yml");
  return list(rules.groups, "groups").flatMap((g) =>
    list(obj(g, "group").rules, "rules").map((r) => {
      const rule = obj(r, "rule");
      return { where: `alert ${str(rule.alert, "alert")}`, expr: str(rule.expr, "expr") };
    }),
  );
}

/** Grafana's variables as a query sees them once Grafana has filled them in. */
const grafanaToPromql = (expr: string): string => expr.replaceAll("$__rate_interval", "5m").replaceAll("$instance", ".*");

it("the dashboard is a Grafana dashboard by @grafana/schema's types, with Prometheus queries", () => {
  const errors = typecheck(`
import type { Dashboard, DataQuery, Panel, RowPanel } from "@grafana/schema";
// Grafana's string enums (threshold modes, legend modes, ...) as the strings the JSON holds.
type Loose<T> = unknown extends T ? T : T extends string ? \`\${T}\` : T extends number | boolean | null | undefined ? T : T extends readonly (infer U)[] ? Loose<U>[] : { [K in keyof T]: Loose<T[K]> };
interface PrometheusQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  range?: boolean;
  instant?: boolean;
  editorMode?: "code" | "builder";
  format?: "time_series" | "table" | "heatmap";
  interval?: string;
  exemplar?: boolean;
}
type QueryPanel = Omit<Loose<Panel>, "type" | "targets"> & { type: "timeseries" | "stat" | "state-timeline"; targets: PrometheusQuery[] };
type Row = Omit<Loose<RowPanel>, "type" | "panels"> & { type: "row"; panels: QueryPanel[] };
const dashboard: Omit<Loose<Dashboard>, "panels"> & { panels: Array<QueryPanel | Row> } = ${dashboardText};
export default dashboard;
`);
  assert.deepEqual(errors, []);
  // And the types do bite: a misspelt panel field is an error.
  assert.ok(
    typecheck(`import type { Panel } from "@grafana/schema";\nexport const p: Panel = { type: "stat", titel: "x" };\n`).some((e) =>
      /titel/.test(e),
    ),
  );

  const ids = allPanels().map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  // Grafana moves overlapping panels around: the layout must have none, within the 24-column grid.
  const boxes = allPanels().map((p) => ({ id: p.id, ...(p.gridPos as { x: number; y: number; w: number; h: number }) }));
  for (const a of boxes) {
    assert.ok(a.x >= 0 && a.w > 0 && a.x + a.w <= 24 && a.h > 0, `panel ${a.id} fits the grid`);
    for (const b of boxes) {
      if (a.id < b.id)
        assert.ok(a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y, `panels ${a.id} and ${b.id} overlap`);
    }
  }
  const variables = dashboard.templating.list.map((v) => v.name);
  assert.ok(variables.includes("datasource") && variables.includes("instance"));
  for (const p of allPanels().filter((x) => x.type !== "row")) {
    assert.deepEqual(p.datasource, { type: "prometheus", uid: "${datasource}" }, `panel ${p.id} uses the data source variable`);
    assert.ok((p.targets ?? []).length > 0, `panel ${p.id} has queries`);
    for (const t of p.targets ?? []) assert.deepEqual(t.datasource, p.datasource);
  }
  for (const topic of [
    "gateway_http_requests_total",
    "gateway_devices",
    "gateway_devices_online",
    "gateway_proxy_errors_total",
    "gateway_http_request_duration_seconds_bucket",
    "gateway_xmpp_iq_inflight",
    "gateway_xmpp_iq_timeouts_total",
    "gateway_xmpp_connected",
    "gateway_redis_connected",
  ]) {
    assert.ok(
      dashboardQueries().some((q) => new RegExp(`\\b${topic}\\b`).test(q.expr)),
      `a panel shows ${topic}`,
    );
  }
});

it("promtool parses every query of the dashboard", async () => {
  const dir = await makeTempDir("dashboard-rules-");
  teardown.add("rules dir", () => removeDir(dir));
  const file = path.join(dir, "dashboard.rules.yml");
  const queries = dashboardQueries();
  const rules = queries.map((q, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(grafanaToPromql(q.expr))}`);
  writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join("\n")}\n`);
  const r = run("promtool", ["check", "rules", file]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, new RegExp(`SUCCESS: ${queries.length} rules found`));
  // promtool does parse: a query with a missing parenthesis fails.
  writeFileSync(
    file,
    `groups:\n  - name: broken\n    rules:\n      - record: x\n        expr: "sum(rate(gateway_http_request_total[5m])"\n`,
  );
  assert.notEqual(run("promtool", ["check", "rules", file]).status, 0);
});

// A gateway against a real Redis and Prosody: its scrape is the exposition the dashboard and the alerts are
// checked against. It runs from its sources, which are what deploy/Dockerfile compiles into the image
// (deploy-docker.test.ts runs that build), so the names it exposes are the image's.
it("every metric and label the dashboard and the alerts query is one a running gateway exposes", async () => {
  const gw = await startGatewayWithStack(teardown, { name: "gateway-from-its-sources", cwd: root });
  const scrape = await (await fetch(`${gw.url}/metrics`)).text();
  const types = new Map([...scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]));
  assert.ok(types.size > 10, scrape.slice(0, 500));
  // Label names of the gateway's own metrics, from the code that registers them (a scrape lists a
  // labelled metric's labels only once it has a series).
  const registry = createMetrics().registry;
  const labelsOf = (name: string): string[] => {
    const metric = registry.getSingleMetric(name) as unknown as { labelNames?: readonly string[] } | undefined;
    return [...(metric?.labelNames ?? []), "instance", "job"];
  };
  // Prometheus' own series about each scrape.
  const scrapeSeries = new Set(["up"]);

  const problems: string[] = [];
  for (const q of [...dashboardQueries(), ...alertQueries()]) {
    const { selectors, grouping } = references(grafanaToPromql(q.expr));
    assert.ok(selectors.length > 0, `${q.where}: no metric found in ${q.expr}`);
    const allowed = new Set<string>();
    for (const { name, labels } of selectors) {
      let base = name;
      let extra: string[] = [];
      if (!types.has(name) && !scrapeSeries.has(name)) {
        const m = /^(.*)_(bucket|sum|count)$/.exec(name);
        if (m && ["histogram", "summary"].includes(types.get(m[1] as string) ?? "")) {
          base = m[1] as string;
          extra = m[2] === "bucket" ? ["le"] : [];
        } else {
          problems.push(`${q.where}: ${name} is not exposed by the gateway`);
          continue;
        }
      }
      const known = scrapeSeries.has(name) ? ["instance", "job"] : [...labelsOf(base), ...extra];
      for (const l of labels) if (!known.includes(l)) problems.push(`${q.where}: ${name} has no label ${l}`);
      for (const l of known) allowed.add(l);
    }
    for (const l of grouping) if (!allowed.has(l)) problems.push(`${q.where}: grouping by ${l}, which none of its metrics has`);
  }
  let variableQueries = 0;
  for (const v of dashboard.templating.list) {
    const query = typeof v.query === "object" && v.query !== null ? (v.query as Json).query : undefined;
    const m = /label_values\((\w+),\s*(\w+)\)/.exec(typeof query === "string" ? query : "");
    if (m) {
      variableQueries++;
      if (!types.has(m[1] as string)) problems.push(`variable ${String(v.name)}: ${m[1]} is not exposed`);
      if (!labelsOf(m[1] as string).includes(m[2] as string)) problems.push(`variable ${String(v.name)}: ${m[1]} has no label ${m[2]}`);
    }
  }
  assert.equal(variableQueries, 1, "the instance variable's query was checked");
  assert.deepEqual(problems, []);
  // The check itself catches a wrong name and a wrong label.
  const wrong = references('sum by (device) (rate(gateway_http_request_total{transport="xmpp"}[5m]))');
  assert.deepEqual(wrong, { selectors: [{ name: "gateway_http_request_total", labels: ["transport"] }], grouping: ["device"] });
  assert.ok(!types.has("gateway_http_request_total"));
});
