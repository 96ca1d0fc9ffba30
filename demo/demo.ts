// `npm run demo`: a private Prosody and Redis, the gateway on port 8080 (GATEWAY_PORT), and a small
// fleet of simulated fire-alarm devices, each behind the device agent (one agent process running all
// identities). Everything runs on 127.0.0.1; Ctrl-C stops everything this script started.
import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { pollUntil } from "../local-stack/ports.js";
import { spawnChild, type ChildHandle } from "../local-stack/process.js";
import { startProsody } from "../local-stack/prosody.js";
import { startRedis } from "../local-stack/redis.js";
import { makeTempDir } from "../local-stack/tempdir.js";
import { fireAlarm } from "../adapters/simulated-device/fire-alarm.js";

const DEVICES = ["dev-17", "dev-18", "dev-19", "kitchen", "garage"];
const port = Number(process.env.GATEWAY_PORT ?? 8080);
const secret = "demo-secret";
const stops: Array<{ name: string; stop: () => Promise<unknown> }> = [];
const say = (line: string) => process.stdout.write(`${line}\n`);

async function startDevice(id: string): Promise<string> {
  const server: Server = createServer(fireAlarm(id));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  stops.push({ name: `device ${id}`, stop: () => new Promise((r) => server.close(r)) });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function node(script: string, name: string, env: Record<string, string>): Promise<ChildHandle> {
  return spawnChild(process.execPath, ["--import", "tsx", script], { name, env });
}

async function main(): Promise<void> {
  say("Starting a private Prosody and Redis ...");
  const redis = await startRedis();
  stops.push({ name: "redis", stop: () => redis.stop() });
  const prosody = await startProsody({ components: [{ domain: "gateway.localhost", secret }] });
  stops.push({ name: "prosody", stop: () => prosody.stop() });
  await prosody.createUsers(DEVICES.map((id) => ({ username: id, password: `pw-${id}` })));

  say(`Starting the gateway on port ${port} ...`);
  const gateway = await node("gateway/main.ts", "gateway", {
    GATEWAY_PORT: String(port),
    REDIS_URL: redis.url,
    XMPP_COMPONENT_SERVICE: prosody.componentService,
    XMPP_COMPONENT_DOMAIN: "gateway.localhost",
    XMPP_COMPONENT_SECRET: secret,
    DEVICE_JID_TEMPLATE: "{id}@localhost/agent",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
  });
  stops.push({ name: "gateway", stop: () => gateway.stop() });
  await pollUntil(
    "gateway ready",
    async () => {
      if (gateway.hasExited()) throw new Error(`gateway exited:\n${gateway.output()}`);
      return (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );

  say(`Starting ${DEVICES.length} simulated fire-alarm devices behind one device agent process ...`);
  const fleet = await Promise.all(DEVICES.map(async (id) => ({ username: id, password: `pw-${id}`, localUrl: await startDevice(id) })));
  const dir = await makeTempDir("demo-fleet-");
  const fleetFile = path.join(dir, "fleet.json");
  await writeFile(fleetFile, JSON.stringify(fleet, null, 2));
  const agent = await node("adapters/device-agent/main.ts", "agent", {
    AGENT_SERVICE: prosody.service,
    AGENT_DOMAIN: "localhost",
    AGENT_GATEWAY_JID: "gateway.localhost",
    AGENT_FLEET_FILE: fleetFile,
    AGENT_SASL_MECHANISM: "PLAIN", // loopback only; use STARTTLS and SCRAM across a network
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
  });
  stops.push({ name: "agent", stop: () => agent.stop() });
  const base = `http://localhost:${port}`;
  await pollUntil(
    "devices online",
    async () => {
      if (agent.hasExited()) throw new Error(`agent exited:\n${agent.output()}`);
      const answers = await Promise.all(
        DEVICES.map((id) =>
          fetch(`${base}/devices/${id}/`).then(
            (r) => r.status,
            () => 0,
          ),
        ),
      );
      return answers.every((s) => s === 200);
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );

  say("");
  say(`Ready: the gateway answers on ${base}. Devices: ${DEVICES.join(", ")}. Try:`);
  say("");
  say(`  curl -i ${base}/devices/dev-17/TEMPERATURE`);
  say(`  curl ${base}/devices/kitchen/HUMIDITY`);
  say(`  curl -X POST ${base}/devices/garage/BULB/ON`);
  say(`  curl ${base}/devices/garage/BULB`);
  say(`  curl -i ${base}/devices/not-connected/TEMPERATURE     # 503 GW_DEVICE_OFFLINE`);
  say(`  curl ${base}/readyz ; curl -s ${base}/metrics | grep gateway_`);
  say("");
  say("Press Ctrl-C to stop everything.");
}

let stopping = false;
async function stopAll(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  say("\nStopping ...");
  for (const { name, stop } of stops.reverse()) {
    await stop().catch((err: unknown) => say(`  ${name}: ${(err as Error).message}`));
  }
  process.exit(code);
}

process.on("SIGINT", () => void stopAll(0));
process.on("SIGTERM", () => void stopAll(0));
main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  void stopAll(1);
});
