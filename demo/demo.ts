// `npm run demo`: a fleet of simulated fire alarms in the middle of its move from HTTP to XMPP (demo/fleet.ts),
// behind the gateway on port 8080 (GATEWAY_PORT), with the admin API on (a token generated for the run), and a
// private Prosody and Redis. Every device has its legacy HTTP server; those that have an agent are served by
// one device agent process. Everything listens on 127.0.0.1; Ctrl-C or SIGTERM stops everything it started.
//
// demo/run.sh passes DEMO_STARTED_AT_MS (epoch ms when it began) and, when it installed something,
// DEMO_INSTALLED and DEMO_INSTALL_MS, so that "Ready in" counts from the user's command, install included.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pollUntil } from "../local-stack/ports.js";
import { spawnChild, type ChildHandle } from "../local-stack/process.js";
import { startProsody } from "../local-stack/prosody.js";
import { startRedis } from "../local-stack/redis.js";
import { makeTempDir, removeDir } from "../local-stack/tempdir.js";
import { fireAlarm } from "../adapters/simulated-device/fire-alarm.js";
import { agentIdentities, FLEET, registryEntries } from "./fleet.js";
import { walkthrough } from "./walkthrough.js";

const port = Number(process.env.GATEWAY_PORT ?? 8080);
const logLevel = process.env.LOG_LEVEL ?? "warn";
const component = { domain: "gateway.localhost", secret: randomBytes(18).toString("base64url") };
const adminToken = randomBytes(18).toString("base64url");
const stops: Array<{ name: string; stop: () => Promise<unknown> }> = [];
const say = (line: string) => process.stdout.write(`${line}\n`);

/** A device's own HTTP server, on loopback; answers its base URL. */
async function startLegacyServer(id: string): Promise<string> {
  const server: Server = createServer(fireAlarm(id));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  stops.push({
    name: `device ${id}`,
    stop: () => {
      server.closeAllConnections(); // the gateway's pass-through keeps connections alive
      return new Promise((resolve) => server.close(resolve));
    },
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function node(script: string, name: string, env: Record<string, string>): Promise<ChildHandle> {
  return spawnChild(process.execPath, ["--import", "tsx", script], { name, env: { LOG_LEVEL: logLevel, ...env } });
}

async function main(): Promise<void> {
  say("Starting a private Prosody and Redis ...");
  // Each is registered for the stop as soon as it runs, even if the other fails to start.
  const [redis, prosody] = await Promise.all([
    startRedis().then((r) => (stops.push({ name: "redis", stop: () => r.stop() }), r)),
    startProsody({ components: [component] }).then((p) => (stops.push({ name: "prosody", stop: () => p.stop() }), p)),
  ]);

  const servers = new Map<string, string>();
  for (const d of FLEET) servers.set(d.id, await startLegacyServer(d.id));
  const identities = agentIdentities(FLEET, servers);
  await prosody.createUsers(identities.map(({ username, password }) => ({ username, password })));
  const dir = await makeTempDir("demo-");
  stops.push({ name: "files", stop: () => removeDir(dir) });
  const devicesFile = path.join(dir, "devices.json");
  await writeFile(devicesFile, JSON.stringify(registryEntries(FLEET, servers), null, 2));
  const fleetFile = path.join(dir, "agent-fleet.json");
  await writeFile(fleetFile, JSON.stringify(identities, null, 2), { mode: 0o600 });

  say(`Starting the gateway on port ${port} ...`);
  const gateway = await node("gateway/main.ts", "gateway", {
    GATEWAY_PORT: String(port),
    REDIS_URL: redis.url,
    XMPP_COMPONENT_SERVICE: prosody.componentService,
    XMPP_COMPONENT_DOMAIN: component.domain,
    XMPP_COMPONENT_SECRET: component.secret,
    DEVICE_JID_TEMPLATE: "{id}@localhost/agent",
    GATEWAY_DEVICES_FILE: devicesFile,
    GATEWAY_ADMIN_TOKEN: adminToken,
  });
  stops.push({ name: "gateway", stop: () => gateway.stop() });
  const local = `http://127.0.0.1:${port}`;
  await pollUntil(
    "the gateway to be ready",
    async () => {
      if (gateway.hasExited()) throw new Error(`the gateway exited:\n${gateway.output()}`);
      return (await fetch(`${local}/readyz`).catch(() => undefined))?.status === 200;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );

  // After the gateway: an agent's presence reaches the gateway only while its component is connected.
  say(`Starting the device agent for ${identities.map((i) => i.username).join(", ")} ...`);
  const agent = await node("adapters/device-agent/main.ts", "agent", {
    AGENT_SERVICE: prosody.service,
    AGENT_DOMAIN: "localhost",
    AGENT_GATEWAY_JID: component.domain,
    AGENT_FLEET_FILE: fleetFile,
    AGENT_SASL_MECHANISM: "PLAIN", // loopback only; use STARTTLS and SCRAM across a network
  });
  stops.push({ name: "agent", stop: () => agent.stop() });
  // Online as the gateway sees it (the agent's presence), for the devices still on HTTP too: their
  // cut-over must work at once. No device request is made, so the metrics start at zero.
  await pollUntil(
    "every agent to be online",
    async () => {
      if (agent.hasExited()) throw new Error(`the agent exited:\n${agent.output()}`);
      const online = await Promise.all(
        identities.map(async ({ username }) => {
          const res = await fetch(`${local}/admin/devices/${username}`, { headers: { Authorization: `Bearer ${adminToken}` } });
          return res.ok && ((await res.json()) as { online?: unknown }).online === true;
        }),
      );
      return online.every(Boolean);
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );

  const started = Number(process.env.DEMO_STARTED_AT_MS) || performance.timeOrigin;
  const parts = `Prosody, Redis, the gateway, 1 device agent for ${identities.length} devices, ${servers.size} legacy HTTP devices`;
  say("");
  say(`Ready in ${seconds(Date.now() - started)} (${parts})${installNote()}`);
  say("");
  for (const line of walkthrough({ base: `http://localhost:${port}`, adminToken, fleet: FLEET })) say(line);
  say("");
  say("Press Ctrl-C to stop everything.");
}

/** ", 41.2 s of it installing prosody redis-server" when demo/run.sh installed something. */
function installNote(): string {
  const what = process.env.DEMO_INSTALLED;
  const ms = Number(process.env.DEMO_INSTALL_MS);
  return what && Number.isFinite(ms) ? `, ${seconds(ms)} of it installing ${what}` : "";
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
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
