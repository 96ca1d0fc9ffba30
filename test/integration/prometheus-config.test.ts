// The Prometheus files in deploy/prometheus, and the gateway's live exposition, as promtool sees them.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { after, before, it } from "node:test";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown } from "../helpers/stack.js";

const dir = fileURLToPath(new URL("../../deploy/prometheus/", import.meta.url));
const teardown = new Teardown();
let gw: RunningGateway;

function promtool(args: string[], input?: string): { status: number | null; out: string } {
  const r = spawnSync("promtool", args, { input, encoding: "utf8", timeout: 20_000 });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

before(async () => {
  const stack = teardown.stopLater("stack", await startStack());
  gw = teardown.stopLater("gateway", await startGateway(stack));
  await fetch(`${gw.url}/devices/nobody/x`); // so the request series exist
});
after(() => teardown.run());

it("promtool check config accepts deploy/prometheus/prometheus.yml and its rule file", () => {
  const r = promtool(["check", "config", `${dir}prometheus.yml`]);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /SUCCESS: 9 rules found/);
});

it("promtool check rules accepts deploy/prometheus/alerts.yml", () => {
  const r = promtool(["check", "rules", `${dir}alerts.yml`]);
  assert.equal(r.status, 0, r.out);
});

it("promtool check metrics finds nothing to lint in a live scrape of the gateway", async () => {
  const scrape = await (await fetch(`${gw.url}/metrics`)).text();
  const r = promtool(["check", "metrics"], scrape);
  assert.equal(r.status, 0, r.out);
  assert.equal(r.out.trim(), "", `promtool said: ${r.out}`);
});
