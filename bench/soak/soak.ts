// `npm run bench -- --soak`: 10,000 requests (by default) held in flight all at once against slow devices,
// first through the gateway's XMPP path, then through its HTTP pass-through to the same devices. Each device
// holds a request for `--hold` seconds; the requests are issued over `--ramp` seconds, so all of them are
// outstanding together when the first answers come back. What counts: every request answered by its own
// device (0 errors), the peak really in flight (the gateway's gauge, the devices' count, the clients'
// count), and the gateway's peak RSS.
//
// Processes, one role each, so that each RSS and CPU figure is that role's own and no process needs more open
// files than the machine allows (one per connection; see fileBudgetNotes):
//   this process   orchestration only: starts everything, reads /proc and the gateway's /metrics
//   gateway        compiled gateway/main.ts under plain node, as `npm start` runs it (bench/common/compiled.ts)
//   prosody, redis harness processes
//   agent          ONE device agent process for every device (AGENT_FLEET_FILE; bench/common/agent-process.ts)
//   devices        child bench/common/slow-devices-worker.ts: one HTTP server per device, each holding its requests
//   load           child bench/soak/burst-worker.ts per phase: one connection per request
// What a phase measures, and how, is in bench/soak/phase.ts.
import { randomBytes } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { pollUntil } from "../../local-stack/ports.js";
import { startGatewayProcess, type GatewayProcess } from "../../test/helpers/gateway-process.js";
import { startStack, type Teardown } from "../../test/helpers/stack.js";
import { adminClient } from "../common/admin.js";
import { startAgentProcess, type AgentProcess } from "../common/agent-process.js";
import type { BenchArgs, SoakArgs } from "../common/args.js";
import { compileForRun, profileArgs } from "../common/compiled.js";
import { clockTicksPerSecond } from "../common/cpu.js";
import { openFilesLimit } from "../common/proc.js";
import { progress } from "../common/progress.js";
import { scrapeMetrics } from "../common/scrape.js";
import type { SlowDevicesConfig, SlowDevicesReady } from "../common/slow-devices-worker.js";
import { runPhase, type SoakRun } from "./phase.js";
import type { SoakPhaseResult, SoakReport } from "./report.js";
import { soakTargets } from "./targets.js";
import { WorkerProcess } from "../common/worker-process.js";

/**
 * Each device's share of the requests, which is also its GATEWAY_DEVICE_MAX_IN_FLIGHT: every request is in
 * flight at once, on either path (the pass-through opens as many connections to a device as the device may
 * have requests in flight).
 */
function shareOf(o: SoakArgs): number {
  return Math.ceil(o.requests / o.devices);
}

/**
 * Every connection is an open file at both ends; a process over its limit fails to accept or to connect
 * (EMFILE). Says which process of this run would need more than the machine allows, before the run does.
 */
function fileBudgetNotes(o: SoakArgs, limit: number | undefined): string[] {
  const notes: string[] = [];
  if (limit === undefined) return notes;
  const reserve = 200; // listeners, Prosody and Redis connections, node's own descriptors
  const needs: Array<[string, number]> = [
    ["load", o.requests],
    ["agent", o.phases.includes("xmpp") ? o.requests + o.devices : 0],
    ["devices", o.requests + o.devices],
    ["gateway", o.requests * (o.phases.includes("http") ? 2 : 1)],
  ];
  for (const [name, n] of needs) {
    if (n + reserve > limit)
      notes.push(`${name} needs about ${n} open files (one per connection), over this machine's limit of ${limit}: expect EMFILE failures`);
  }
  return notes;
}

/** Until the gateway has as many devices online as expected (its own count, from presence in Redis). */
async function waitOnline(gw: GatewayProcess, agent: AgentProcess, n: number, timeoutMs: number): Promise<number> {
  return pollUntil(
    `${n} devices online at the gateway`,
    async () => {
      if (agent.hasExited()) throw new Error(`the agent process exited:\n${agent.output().slice(-2000)}`);
      const online = (await scrapeMetrics(gw.url, ["gateway_devices_online"])).gateway_devices_online ?? 0;
      return online >= n ? online : false;
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** Registers every device `transport: "http"` at its own server, through the admin API, a few at a time. */
async function registerHttp(gw: GatewayProcess, token: string, servers: Record<string, string>, ids: string[]): Promise<void> {
  const admin = adminClient(gw.url, token);
  const queue = [...ids];
  const worker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      const stored = await admin.put(id, { transport: "http", httpTarget: servers[id] });
      if (stored.transport !== "http") throw new Error(`the registry stored ${JSON.stringify(stored)} for ${id}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

export async function runSoak(args: BenchArgs, teardown: Teardown): Promise<SoakReport> {
  const o = args.soak;
  const startedAt = new Date().toISOString();
  const hz = clockTicksPerSecond();
  const share = shareOf(o);
  const holdMs = o.holdS * 1000;
  // Long enough for the last request of the ramp to be held, with a minute to spare: a timeout here would be
  // the bench's, not a finding.
  const deadlineMs = Math.round(o.rampS * 1000 + holdMs + 60_000);
  const limit = openFilesLimit();
  const notes = fileBudgetNotes(o, limit);
  for (const note of notes) progress(`note: ${note}`);

  const build = await compileForRun(teardown);
  progress("starting Redis and Prosody");
  const stack = teardown.stopLater("stack", await startStack());
  const component = stack.prosody.components[0];
  if (!component) throw new Error("the harness Prosody has no component");
  const ids = Array.from({ length: o.devices }, (_, i) => `soak-${i}`);
  let t = performance.now();
  await stack.prosody.createUsers(ids.map((id) => ({ username: id, password: `pw-${id}` })));
  const usersCreatedMs = performance.now() - t;

  progress(`starting ${o.devices} slow device servers`);
  const devicesConfig: SlowDevicesConfig = { ids, holdMs, layout: "per-device" };
  const devices = WorkerProcess.start("devices", new URL("../common/slow-devices-worker.ts", import.meta.url), devicesConfig);
  teardown.add("devices", () => devices.stop());
  const { servers } = (await devices.next("ready", 60_000)) as unknown as SlowDevicesReady;

  progress("starting the gateway process");
  const adminToken = randomBytes(24).toString("hex");
  const gw = await startGatewayProcess(
    stack,
    {
      GATEWAY_ADMIN_TOKEN: adminToken,
      GATEWAY_DEVICE_MAX_IN_FLIGHT: String(share),
      GATEWAY_REQUEST_TIMEOUT_MS: String(deadlineMs),
      GATEWAY_MAX_IN_FLIGHT: String(o.requests),
      ...(args.gatewayNodeOptions ? { NODE_OPTIONS: args.gatewayNodeOptions } : {}),
      ...args.gatewayEnv,
    },
    undefined,
    { nodeArgs: [...profileArgs(args.cpuProfDir), ...build.gatewayArgs] },
  );
  teardown.add("gateway", () => gw.stop());

  // The XMPP path needs the agents; the pass-through alone reaches the device servers directly.
  let agent: AgentProcess | undefined;
  let devicesOnlineMs: number | null = null;
  if (o.phases.includes("xmpp")) {
    progress(`starting one agent process for the ${o.devices} devices`);
    t = performance.now();
    const started = await startAgentProcess({
      service: stack.prosody.service,
      domain: stack.prosody.vhost,
      gatewayJid: component.domain,
      identities: ids.map((id) => ({ username: id, password: `pw-${id}`, localUrl: servers[id] ?? "" })),
      localTimeoutMs: deadlineMs,
      nodeArgs: build.agentArgs,
    });
    agent = started;
    teardown.add("agent", () => started.stop());
    await waitOnline(gw, started, o.devices, 120_000);
    devicesOnlineMs = performance.now() - t;
  }

  const running: SoakRun = {
    gw,
    agent,
    devices,
    pids: { gateway: gw.child.pid, prosody: stack.prosody.pid, redis: stack.redis.pid, agent: agent?.pid, devices: devices.pid },
    ids,
    deadlineMs,
    hz,
    teardown,
  };
  const phases: SoakPhaseResult[] = [];
  for (const phase of o.phases) {
    if (phase === "http") {
      progress(`registering the ${o.devices} devices as transport "http" through the admin API`);
      await registerHttp(gw, adminToken, servers, ids);
      await delay(100);
    }
    phases.push(await runPhase(running, phase, o));
  }
  if (args.gatewayNodeOptions) notes.push(`the gateway ran with NODE_OPTIONS=${args.gatewayNodeOptions}`);
  for (const [name, value] of Object.entries(args.gatewayEnv)) notes.push(`the gateway ran with ${name}=${value}`);
  if (args.cpuProfDir)
    notes.push(`the gateway process was CPU-profiled (written to ${args.cpuProfDir} when it exits): timings are not comparable`);

  return {
    startedAt,
    machine: { cpus: os.cpus().length, node: process.version, clockTicksPerSecond: hz, openFilesLimit: limit ?? null },
    settings: {
      requests: o.requests,
      devices: o.devices,
      holdS: o.holdS,
      rampS: o.rampS,
      maxInFlightPerDevice: share,
      maxInFlight: o.requests,
      deadlineMs,
    },
    arrangement: {
      gateway: "its own process: the compiled gateway/main.ts under node --enable-source-maps, as `npm start` runs it",
      agent: `one device agent process (compiled adapters/device-agent/main.ts, AGENT_FLEET_FILE) for all ${o.devices} devices, SASL PLAIN`,
      devices: `child node process: ${o.devices} HTTP servers, one per device, each answering after ${o.holdS} s`,
      load: "child node process per phase: one connection per request (agent: false), issued at an even pace",
      prosody: "harness child process",
      redis: "harness child process",
    },
    setup: { usersCreatedMs, devicesOnlineMs },
    phases,
    targets: soakTargets(phases, o.requests, args.gatewayNodeOptions),
    notes,
  };
}
