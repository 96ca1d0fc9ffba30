// The agent and the gateway as real processes, the way operators run them: configuration errors, a device
// agent whose local server is down, slow or frozen, an XMPP server restart, and SIGTERM.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Env } from "../../lib/env.js";
import { echoDevice } from "../helpers/echo-device.js";
import { startGatewayProcess } from "../helpers/gateway-process.js";
import { gatewayEnv, startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startDeviceServer } from "../helpers/http-device.js";
import { freePort, pollUntil } from "../../local-stack/ports.js";
import { spawnChild, type ChildHandle } from "../../local-stack/process.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const TSX = ["--import", "tsx"];

describe("agent and gateway processes", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;

  function agentEnv(username: string, localUrl: string, extra: Env = {}): Env {
    return {
      AGENT_SERVICE: stack.prosody.service,
      AGENT_DOMAIN: stack.prosody.vhost,
      AGENT_USERNAME: username,
      AGENT_PASSWORD: `pw-${username}`,
      AGENT_LOCAL_URL: localUrl,
      AGENT_GATEWAY_JID: "gateway.localhost",
      AGENT_SASL_MECHANISM: "PLAIN",
      LOG_LEVEL: "warn",
      ...extra,
    };
  }

  async function startAgent(username: string, localUrl: string, extra: Env = {}): Promise<ChildHandle> {
    await stack.prosody.createUsers([{ username, password: `pw-${username}` }]);
    const child = teardown.stopLater(
      `agent ${username}`,
      await spawnChild(process.execPath, [...TSX, "adapters/device-agent/main.ts"], {
        name: `agent-${username}`,
        env: agentEnv(username, localUrl, extra),
      }),
    );
    // Online means the gateway gets an answer that is not "offline" from it.
    await pollUntil(`${username} reachable`, async () => (await fetch(`${gw.url}/devices/${username}/ping`)).status !== 503, {
      timeoutMs: 15_000,
    });
    return child;
  }

  async function dropped(reason: string): Promise<number> {
    const metric = await gw.gateway.metrics.repliesDropped.get();
    return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
  }

  before(async () => {
    // A second component domain lets a gateway process run beside the in-process one: Prosody refuses a
    // second connection on the same domain (`conflict`).
    stack = teardown.stopLater(
      "stack",
      await startStack({
        prosody: {
          components: [
            { domain: "gateway.localhost", secret: "test-secret" },
            { domain: "gw2.localhost", secret: "secret-2" },
          ],
        },
      }),
    );
    gw = teardown.stopLater("gateway", await startGateway(stack, { GATEWAY_REQUEST_TIMEOUT_MS: "10000" }));
  });
  after(() => teardown.run());

  it("serves a device through the agent process", async () => {
    const device = teardown.stopLater("device", await startDeviceServer(echoDevice("proc-dev")));
    await startAgent("proc-dev", device.url);
    const res = await fetch(`${gw.url}/devices/proc-dev/TEMPERATURE?unit=c`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { url: string }).url, "/TEMPERATURE?unit=c");
  });

  it("answers 502 from the agent when the device's own server is down", async () => {
    const closed = await freePort(); // a port nothing listens on: no server here to bind port 0
    await startAgent("down-dev", `http://127.0.0.1:${closed}`);
    const res = await fetch(`${gw.url}/devices/down-dev/TEMPERATURE`);
    assert.equal(res.status, 502);
    assert.equal(res.headers.get("x-device-agent-error"), "local-unreachable");
  });

  it("answers 504 from the agent when the device's own server does not answer in time", async () => {
    const silent = teardown.stopLater("silent device", await startDeviceServer(() => undefined));
    await startAgent("slow-dev", silent.url, { AGENT_LOCAL_TIMEOUT_MS: "300" });
    const res = await fetch(`${gw.url}/devices/slow-dev/TEMPERATURE`);
    assert.equal(res.status, 504);
    assert.equal(res.headers.get("x-device-agent-error"), "local-timeout");
  });

  it("answers 504 GW_DEVICE_TIMEOUT for a frozen agent (SIGSTOP), and drops its reply when it thaws", async () => {
    const device = teardown.stopLater("frozen device", await startDeviceServer(echoDevice("frozen-dev")));
    const agent = await startAgent("frozen-dev", device.url);
    const late = await dropped("late");
    process.kill(agent.pid, "SIGSTOP");
    try {
      const res = await fetch(`${gw.url}/devices/frozen-dev/TEMPERATURE`, { headers: { "X-Gateway-Timeout": "500" } });
      assert.equal(res.status, 504);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, "GW_DEVICE_TIMEOUT");
    } finally {
      process.kill(agent.pid, "SIGCONT");
    }
    await pollUntil("late reply counted", async () => (await dropped("late")) > late, { timeoutMs: 10_000 });
    assert.equal((await fetch(`${gw.url}/devices/frozen-dev/TEMPERATURE`)).status, 200);
  });

  it("recovers by itself when the XMPP server restarts: component and agents reconnect", async () => {
    const device = teardown.stopLater("device 2", await startDeviceServer(echoDevice("phoenix")));
    const agent = await startAgent("phoenix", device.url);
    await stack.prosody.restart();
    const res = await pollUntil(
      "served again after the restart",
      async () => {
        const r = await fetch(`${gw.url}/devices/phoenix/TEMPERATURE`);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nagent output:\n${agent.output()}`);
    });
    assert.equal(((await res.json()) as { device: string }).device, "phoenix");
  });

  it("stops the agent with one clear line per bad setting", async () => {
    const env = { ...agentEnv("x", "not a url"), AGENT_USERNAME: "", AGENT_LOCAL_TIMEOUT_MS: "soon" };
    const child = await spawnChild(process.execPath, [...TSX, "adapters/device-agent/main.ts"], { name: "bad-agent", env });
    const { code } = await child.exited;
    assert.equal(code, 2);
    const out = child.output();
    for (const name of ["AGENT_USERNAME", "AGENT_LOCAL_URL", "AGENT_LOCAL_TIMEOUT_MS"])
      assert.match(out, new RegExp(`^config: ${name}`, "m"));
  });

  it("stops the gateway with one clear line per bad setting", async () => {
    const env = { ...gatewayEnv(stack, { XMPP_COMPONENT_SECRET: "", GATEWAY_PORT: "99999" }) };
    const child = await spawnChild(process.execPath, [...TSX, "gateway/main.ts"], { name: "bad-gateway", env });
    const { code } = await child.exited;
    assert.equal(code, 2);
    assert.match(child.output(), /^config: XMPP_COMPONENT_SECRET \(or XMPP_COMPONENT_SECRET_FILE\) is required$/m);
    assert.match(child.output(), /^config: GATEWAY_PORT="99999"/m);
  });

  it("runs the gateway process, serves, and exits 0 on SIGTERM", async () => {
    const device = teardown.stopLater("device 3", await startDeviceServer(echoDevice("proc2")));
    await startAgent("proc2", device.url, { AGENT_GATEWAY_JID: "gw2.localhost" });
    const { child, url } = teardown.stopLater(
      "gateway process",
      await startGatewayProcess(
        stack,
        {
          LOG_LEVEL: "info",
          GATEWAY_INSTANCE_ID: "proc-gw",
          XMPP_COMPONENT_DOMAIN: "gw2.localhost",
          XMPP_COMPONENT_SECRET: "secret-2",
        },
        { name: "gateway" },
      ),
    );
    const served = await fetch(`${url}/devices/proc2/TEMPERATURE`);
    assert.equal(served.status, 200);
    assert.equal(((await served.json()) as { device: string }).device, "proc2");
    process.kill(child.pid, "SIGTERM");
    const { code } = await child.exited;
    assert.equal(code, 0);
    // One JSON log line per request, with the fields operators search by.
    const line = child
      .output()
      .split("\n")
      .find((l) => l.includes('"msg":"request"') && l.includes("proc2"));
    assert.ok(line, "no request log line");
    const entry = JSON.parse(line) as Record<string, unknown>;
    for (const field of ["requestId", "deviceId", "transport", "status", "durationMs", "instance"])
      assert.ok(field in entry, `log line lacks ${field}`);
    assert.equal(entry.instance, "proc-gw");
  });
});
