// `npm run bench -- --fleet`: 1,000 simulated devices (by default) connected through ONE device agent
// process (AGENT_FLEET_FILE), against Prosody, with the gateway running. Measured: how long from the agent's
// spawn until the gateway tracks every device as online (its gateway_devices_online, from the presence it
// keeps in Redis), the agent's RSS and CPU seconds, the gateway's RSS, and whether the gateway reaches every
// device (one request to each, counted as answered when the device's own reading comes back).
//
// Processes: this one orchestrates and sends the check requests (it is not measured); the gateway and the
// agent (both compiled and run by plain node, as they ship: bench/common/compiled.ts) and the device servers
// (bench/common/slow-devices-worker.ts, one shared server, no hold) each run in their own process.
import os from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { startGatewayProcess, type GatewayProcess } from "../../test/helpers/gateway-process.js";
import { startStack, type Teardown } from "../../test/helpers/stack.js";
import type { BenchArgs } from "../common/args.js";
import { compileForRun, profileArgs } from "../common/compiled.js";
import { clockTicksPerSecond, cpuSecondsBetween, sampleTicks, type CpuSeconds, type Pids } from "../common/cpu.js";
import { readingBody } from "../common/device.js";
import { connectFleet } from "./connect.js";
import type { FleetReport } from "./report.js";
import { httpGetter } from "../common/http-get.js";
import { memoryOf, MIB } from "../common/proc.js";
import { progress } from "../common/progress.js";
import { scrapeMetrics } from "../common/scrape.js";
import type { SlowDevicesConfig, SlowDevicesReady } from "../common/slow-devices-worker.js";
import { summarize } from "../common/stats.js";
import { WorkerProcess } from "../common/worker-process.js";

/** The gateway must count them all within this long after the agent's spawn, or the run reports "never". */
const CONNECT_BOUND_MS = 180_000;
/** Requests of the reach check outstanding at once: a check of reachability, not a load. */
const REACH_CONCURRENCY = 50;
const IDLE_S = 5;

/** One GET of each device's reading through the gateway; "200" when its own reading came back. */
async function reachEach(gw: GatewayProcess, ids: string[]): Promise<FleetReport["reach"]> {
  const http = httpGetter(gw.url, REACH_CONCURRENCY, 10_000);
  const outcomes: Record<string, number> = {};
  const latencies: number[] = [];
  const queue = [...ids];
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      const started = performance.now();
      let outcome: string;
      try {
        outcome = (await http.get(`/devices/${id}/TEMPERATURE`)) === readingBody(id) ? "200" : "200 wrong body";
        if (outcome === "200") latencies.push(performance.now() - started);
      } catch (err) {
        outcome = (err as Error).message.slice(0, 120);
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
  };
  try {
    await Promise.all(Array.from({ length: REACH_CONCURRENCY }, worker));
  } finally {
    http.close();
  }
  return {
    requested: ids.length,
    answered: outcomes["200"] ?? 0,
    outcomes,
    elapsedMs: performance.now() - t0,
    latencyMs: summarize(latencies),
  };
}

const rssMiB = (pid: number): number => (memoryOf(pid)?.rssBytes ?? Number.NaN) / MIB;
const peakMiB = (pid: number): number => (memoryOf(pid)?.peakRssBytes ?? Number.NaN) / MIB;

export async function runFleet(args: BenchArgs, teardown: Teardown): Promise<FleetReport> {
  const n = args.fleet.devices;
  const startedAt = new Date().toISOString();
  const hz = clockTicksPerSecond();

  const build = await compileForRun(teardown);
  progress("starting Redis and Prosody");
  const stack = teardown.stopLater("stack", await startStack());
  const component = stack.prosody.components[0];
  if (!component) throw new Error("the harness Prosody has no component");
  const width = String(n - 1).length;
  const ids = Array.from({ length: n }, (_, i) => `fleet-${String(i).padStart(width, "0")}`);

  const devicesConfig: SlowDevicesConfig = { ids, holdMs: 0, layout: "shared" };
  const devices = WorkerProcess.start("devices", new URL("../common/slow-devices-worker.ts", import.meta.url), devicesConfig);
  teardown.add("devices", () => devices.stop());
  const { servers } = (await devices.next("ready", 60_000)) as unknown as SlowDevicesReady;

  progress("starting the gateway process");
  const gw = await startGatewayProcess(stack, args.gatewayNodeOptions ? { NODE_OPTIONS: args.gatewayNodeOptions } : {}, undefined, {
    nodeArgs: [...profileArgs(args.cpuProfDir), ...build.gatewayArgs],
  });
  teardown.add("gateway", () => gw.stop());

  const base: Pids = { gateway: gw.child.pid, prosody: stack.prosody.pid, redis: stack.redis.pid };
  let beforeSpawn: Record<string, number | undefined> = {};
  progress(`creating ${n} accounts, starting ONE agent process for them; waiting for the gateway to count them online`);
  const { agent, connect, usersCreatedMs } = await connectFleet(
    {
      server: stack.prosody,
      ids,
      servers,
      countOnline: async () => (await scrapeMetrics(gw.url, ["gateway_devices_online"])).gateway_devices_online,
      boundMs: CONNECT_BOUND_MS,
      agentArgs: build.agentArgs,
      beforeSpawn: () => (beforeSpawn = { ...sampleTicks(base), agent: 0 }), // the agent's CPU counts from its spawn
      ...(args.cpuProfDir ? { cpuProfDir: args.cpuProfDir } : {}),
    },
    teardown,
  );
  const pids: Pids = { ...base, agent: agent.pid };
  const afterConnect = sampleTicks(pids);
  const connectMemory = { agent: rssMiB(agent.pid), gateway: rssMiB(gw.child.pid), prosody: rssMiB(stack.prosody.pid) };
  progress(
    connect.allOnlineMs === null
      ? `only ${connect.online} of ${n} online after ${CONNECT_BOUND_MS / 1000} s`
      : `all ${n} online after ${(connect.allOnlineMs / 1000).toFixed(2)} s; one request to each`,
  );

  const reach = await reachEach(gw, ids);
  const afterReach = sampleTicks(pids);
  progress(`${reach.answered}/${reach.requested} answered; ${IDLE_S} s idle`);
  await delay(IDLE_S * 1000);
  const afterIdle = sampleTicks(pids);

  const memoryMiB: FleetReport["memoryMiB"] = {
    agent: { afterConnect: connectMemory.agent, afterReach: rssMiB(agent.pid), peak: peakMiB(agent.pid) },
    gateway: { afterConnect: connectMemory.gateway, afterReach: rssMiB(gw.child.pid), peak: peakMiB(gw.child.pid) },
    prosody: { afterConnect: connectMemory.prosody, afterReach: rssMiB(stack.prosody.pid), peak: peakMiB(stack.prosody.pid) },
  };
  const cpuS: { connect: CpuSeconds; reach: CpuSeconds; idle: CpuSeconds } = {
    connect: cpuSecondsBetween(beforeSpawn, afterConnect, hz),
    reach: cpuSecondsBetween(afterConnect, afterReach, hz),
    idle: cpuSecondsBetween(afterReach, afterIdle, hz),
  };
  const notes: string[] = [];
  if (args.gatewayNodeOptions) notes.push(`the gateway ran with NODE_OPTIONS=${args.gatewayNodeOptions}`);
  if (args.cpuProfDir)
    notes.push(
      `the gateway and agent processes were CPU-profiled (written to ${args.cpuProfDir} when they exit): timings are not comparable`,
    );
  return {
    startedAt,
    machine: { cpus: os.cpus().length, node: process.version, clockTicksPerSecond: hz },
    settings: { devices: n },
    arrangement: {
      agent: `ONE device agent process (compiled adapters/device-agent/main.ts under node, AGENT_FLEET_FILE) for all ${n} devices, SASL PLAIN`,
      gateway: "its own process: the compiled gateway/main.ts under node --enable-source-maps, as `npm start` runs it",
      devices: `child node process: one HTTP server answering every device under /{id}`,
      check: `this process: one GET /devices/{id}/TEMPERATURE per device through the gateway, ${REACH_CONCURRENCY} at a time`,
    },
    usersCreatedMs,
    connect,
    reach,
    memoryMiB,
    cpuS,
    idleS: IDLE_S,
    targets: { devicesOnline: n, answered: n },
    meetsTargets: connect.online >= n && reach.answered === n,
    notes,
  };
}
