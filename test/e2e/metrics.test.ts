// Metrics: the names README, "Operations endpoints" promises, gateway_build_info, and GATEWAY_METRICS_PORT moving /metrics off
// the main port (for a scrape network apart from the clients').
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, it } from "node:test";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown } from "../helpers/stack.js";

const teardown = new Teardown();
let gw: RunningGateway;
let metricsPort: number;

before(async () => {
  const stack = teardown.stopLater("stack", await startStack());
  gw = teardown.stopLater("gateway", await startGateway(stack, { GATEWAY_METRICS_PORT: "0" }));
  metricsPort = gw.gateway.metricsHttp?.port ?? 0;
  assert.ok(metricsPort > 0 && metricsPort !== gw.gateway.http.port, "a metrics port of its own");
  await fetch(`${gw.url}/devices/nobody/x`); // one request, so the request series exist
});
after(() => teardown.run());

it("serves /metrics on GATEWAY_METRICS_PORT only", async () => {
  const main = await fetch(`${gw.url}/metrics`);
  assert.equal(main.status, 404);
  assert.equal(((await main.json()) as { error: { code: string } }).error.code, "GW_NOT_FOUND");
  const other = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
  assert.equal(other.status, 404, "the metrics port serves nothing else");
  const scrape = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(scrape.status, 200);
  assert.match(scrape.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
});

it("exposes every metric the design names, and the build", async () => {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  assert.match(text, new RegExp(`^gateway_build_info\\{version="${version.replaceAll(".", "\\.")}",node="${process.version}"\\} 1$`, "m"));
  for (const name of [
    "gateway_http_requests_total",
    "gateway_http_request_duration_seconds",
    "gateway_xmpp_iq_inflight",
    "gateway_xmpp_iq_timeouts_total",
    "gateway_replies_dropped_total",
    "gateway_replies_forwarded_total",
    "gateway_correlation_records_total",
    "gateway_devices_online",
    "gateway_devices",
    "gateway_xmpp_connected",
    "gateway_redis_connected",
    "gateway_proxy_errors_total",
    "process_cpu_seconds_total",
  ]) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, "m"), `${name} missing`);
  }
  assert.match(text, /^gateway_xmpp_connected 1$/m);
  assert.match(text, /^gateway_redis_connected 1$/m);
  assert.match(text, /^gateway_http_requests_total\{transport="xmpp",method="GET",status_class="5xx"\} 1$/m);
});
