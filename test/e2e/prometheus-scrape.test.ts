// A real Prometheus, with the shipped configuration, scraping two gateway instances: both targets come up,
// and the request counter it stores moves when requests are made.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { startPrometheus, type PrometheusServer } from "../../local-stack/prometheus.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, testComponents } from "../helpers/stack.js";

const teardown = new Teardown();
let a: RunningGateway;
let b: RunningGateway;
let prometheus: PrometheusServer;

before(async () => {
  const stack = teardown.stopLater(
    "stack",
    await startStack({
      prosody: {
        components: testComponents(2),
      },
    }),
  );
  const prefix = `prom-${randomBytes(3).toString("hex")}:`;
  a = teardown.stopLater("gateway A", await startGateway(stack, { REDIS_KEY_PREFIX: prefix, GATEWAY_INSTANCE_ID: "prom-a" }));
  b = teardown.stopLater(
    "gateway B",
    await startGateway(stack, {
      REDIS_KEY_PREFIX: prefix,
      GATEWAY_INSTANCE_ID: "prom-b",
      XMPP_COMPONENT_DOMAIN: "gw2.localhost",
      XMPP_COMPONENT_SECRET: "s2",
    }),
  );
  prometheus = teardown.stopLater("prometheus", await startPrometheus([a.url, b.url].map((u) => new URL(u).host)));
});
after(() => teardown.run());

it("scrapes both instances, and sees the request counter move", async () => {
  await pollUntil(
    "both targets up",
    async () => {
      const up = await prometheus.query('up{job="gateway"}');
      return up.length === 2 && up.every((s) => s.value[1] === "1");
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  );
  const requests = 'sum(gateway_http_requests_total{job="gateway"})';
  const before = Number((await prometheus.query(requests))[0]?.value[1] ?? 0);
  for (let i = 0; i < 5; i++) await fetch(`${a.url}/devices/nobody/x`);
  for (let i = 0; i < 3; i++) await fetch(`${b.url}/devices/nobody/x`);
  await pollUntil("counter moved by 8", async () => Number((await prometheus.query(requests))[0]?.value[1] ?? 0) >= before + 8, {
    timeoutMs: 30_000,
    intervalMs: 250,
  });
  const build = await prometheus.query('gateway_build_info{job="gateway"}');
  assert.equal(build.length, 2, "both instances report their build");
});
