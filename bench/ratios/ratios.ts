// The default run: four paths, one after the other in this order, on the same Prosody, Redis and simulated devices, with
// the same load (64 closed-loop clients over N devices, `--devices`, 10 by default, asked round robin; same
// warm-up and duration):
//   (a) raw IQ round trip            a bare @xmpp/component ↔ device agents: the baseline of (b)
//   (b) gateway XMPP path            HTTP clients → gateway → XEP-0332 over Prosody → agents → device servers
//   (c) bare http-proxy-3            HTTP clients → a minimal http-proxy-3 → device servers: the baseline of (d)
//   (d) gateway HTTP pass-through    HTTP clients → gateway (devices registered `transport: "http"`) → device servers
// Right after each, the same path unloaded (runs.ts; unless --no-latency): one client, one request at a
// time, a fixed count; what the gateway adds to a single request. Then the performance targets (targets.ts),
// each met or missed.
//
// How the processes are arranged, so that the gateway is measured alone:
//   this process   the orchestration, which only waits and reads /proc while the load runs
//   gateway        its own process: the compiled gateway/main.ts under plain node, as `npm start` runs it
//                  (bench/common/compiled.ts; tsx would add its loader and a name on every function), logs
//                  silent, on a port picked beforehand (a silent gateway cannot tell the one it got)
//   prosody        its own process (local stack), shared by every path
//   redis          `--redis`: one redis-server, a Sentinel deployment or a Cluster (redis.ts), used by the
//                  gateway only; its CPU is the sum over every redis-server process of it
//   devices        child `node --import tsx bench/ratios/devices-worker.ts`: every device's HTTP server, one
//                  listening port (origin) per device; (c) and (d) are pointed at them
//   agent          ONE device agent process (the shipped agent under tsx, AGENT_FLEET_FILE) for every device
//                  (fleet.ts), serving (a) and (b), idle during (c) and (d)
//   proxy          child `node --import tsx bench/ratios/proxy-worker.ts`, up during (c) only
//   load           child `node --import tsx bench/ratios/load-worker.ts`, one per path and shape: for (a) a
//                  bare @xmpp/component that is its own load generator, for (b) (c) (d) keep-alive node:http
//                  clients asking for `/devices/{id}/TEMPERATURE`
// (a) runs first, while no gateway is up: the bare component of (a) must hold the gateway's component
// domain, since the agents serve requests from that domain only, and Prosody admits one connection per
// domain. The agent process stops after (a) and starts again once the gateway is up, so that the gateway
// hears every device's presence; (b) waits until it counts them all online. (b) runs with every device on
// XMPP (no registry entries: DEFAULT_TRANSPORT); then (c), with the gateway idle; then the devices are
// registered `transport: "http"` through the admin API, and (d) runs on the same gateway. Each path thus
// runs right after its baseline (b after a, d after c), so that the machine's drift over a run, which
// moves every process's CPU per request alike, falls as little as it can between a ratio's two terms. The gateway's own metrics confirm afterwards which transport
// served each path. CPU seconds per process are read from /proc/PID/stat at the edges of the measured window.
import { randomBytes } from "node:crypto";
import os from "node:os";
import { startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
import { freePort } from "../../local-stack/ports.js";
import { startGatewayProcess, type GatewayProcess } from "../../test/helpers/gateway-process.js";
import { parseMetrics } from "../../test/helpers/metrics.js";
import type { Teardown } from "../../test/helpers/stack.js";
import { adminClient } from "../common/admin.js";
import type { BenchArgs } from "../common/args.js";
import { compileForRun, profileArgs } from "../common/compiled.js";
import { clockTicksPerSecond, type PidGroups } from "../common/cpu.js";
import { progress } from "../common/progress.js";
import { WorkerProcess } from "../common/worker-process.js";
import { startBenchFleet, type BenchFleet } from "./fleet.js";
import type { ProxyConfig, ProxyReady } from "./proxy-worker.js";
import { startBenchRedis, type BenchRedis } from "./redis.js";
import { CONCURRENCY, pathRunner, type Run } from "./runs.js";
import { compare, type BenchReport, type FourPaths, type PathResult } from "./report.js";
import { pathTargets } from "./targets.js";

/** Connections per device in the bare proxy's pool: the gateway's default limit of requests in flight per device. */
const PROXY_SOCKETS_PER_DEVICE = 16;
/** Registry PUTs outstanding at once when the devices move to the pass-through. */
const REGISTER_CONCURRENCY = 16;
/** Logins of thousands of devices through one agent process take a while on a loaded machine. */
const ONLINE_BOUND_MS = 300_000;

/** Requests the gateway answered 2xx, by transport, from its own metrics (everything since it started). */
async function answeredByTransport(gw: GatewayProcess): Promise<Record<string, number>> {
  const res = await fetch(`${gw.url}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${gw.url}/metrics: status ${res.status}`);
  const out: Record<string, number> = {};
  for (const s of parseMetrics(await res.text())) {
    if (s.name !== "gateway_http_requests_total" || s.labels.status_class !== "2xx") continue;
    const transport = String(s.labels.transport);
    out[transport] = (out[transport] ?? 0) + s.value;
  }
  return out;
}

/**
 * Runs one gateway path and checks, from the gateway's metrics, that `transport` served it: at least the
 * window's successful requests, and none on any other transport. (A check of the set-up, not of timings.)
 */
async function measureGatewayPath(gw: GatewayProcess, transport: string, run: Run): Promise<PathResult> {
  const before = await answeredByTransport(gw);
  const result = await run();
  const after = await answeredByTransport(gw);
  const delta = (t: string): number => (after[t] ?? 0) - (before[t] ?? 0);
  const others = Object.keys(after).filter((t) => t !== transport && delta(t) > 0);
  if (delta(transport) < result.load.completed || others.length > 0) {
    const seen = Object.keys(after)
      .map((t) => `${t}: ${delta(t)}`)
      .join(", ");
    throw new Error(`${result.label}: expected every request on transport ${transport}; the gateway answered 2xx ${seen || "nothing"}`);
  }
  return result;
}

/** Registers every device `transport: "http"` at its own server, through the admin API, a few at a time. */
async function registerHttp(gw: GatewayProcess, token: string, fleet: BenchFleet): Promise<void> {
  const admin = adminClient(gw.url, token);
  const queue = [...fleet.ids];
  const worker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      const stored = await admin.put(id, { transport: "http", httpTarget: fleet.servers[id] });
      if (stored.transport !== "http" || stored.httpTarget !== fleet.servers[id]) {
        throw new Error(`the registry stored ${JSON.stringify(stored)} for ${id}`);
      }
    }
  };
  await Promise.all(Array.from({ length: REGISTER_CONCURRENCY }, worker));
}

/** Prosody and the chosen Redis, started together; whichever started is stopped by the teardown. */
async function startServers(args: BenchArgs, teardown: Teardown): Promise<{ prosody: ProsodyServer; redis: BenchRedis }> {
  const [p, r] = await Promise.allSettled([startProsody(), startBenchRedis(args.paths.redis)]);
  if (p.status === "fulfilled") teardown.stopLater("prosody", p.value);
  if (r.status === "fulfilled") teardown.stopLater("redis", r.value);
  if (p.status === "rejected") throw p.reason;
  if (r.status === "rejected") throw r.reason;
  return { prosody: p.value, redis: r.value };
}

export async function runRatios(args: BenchArgs, teardown: Teardown): Promise<BenchReport> {
  const startedAt = new Date().toISOString();
  const hz = clockTicksPerSecond();
  const n = args.paths.devices;
  const build = await compileForRun(teardown);
  progress(`starting Prosody and Redis (${args.paths.redis})`);
  const { prosody, redis } = await startServers(args, teardown);
  const component = prosody.components[0];
  if (!component) throw new Error("the local Prosody has no component");
  const width = String(n - 1).length;
  const ids = Array.from({ length: n }, (_, i) => `bench-${String(i).padStart(width, "0")}`);

  progress(`creating ${n} accounts, starting ${n} device servers and one agent process for them`);
  const fleet = await startBenchFleet(prosody, ids, teardown);
  await fleet.startAgents();

  const runner = pathRunner(args, ids, fleet, hz, teardown);
  const pids = (): PidGroups => ({
    gateway: undefined,
    proxy: undefined,
    prosody: [prosody.pid],
    redis: redis.pids,
    devices: [fleet.devicesPid],
    agent: ((pid) => (pid === undefined ? undefined : [pid]))(fleet.agentPid()),
  });

  // (a): the agents are logging in meanwhile; the load worker asks each device until it answers.
  const a = await runner.measure({
    label: "(a) raw IQ round trip",
    driver: {
      mode: "raw-iq",
      componentService: prosody.componentService,
      componentDomain: component.domain,
      componentSecret: component.secret,
      deviceJidTemplate: `{id}@${prosody.vhost}/agent`,
    },
    processes: pids(),
    retryForMs: ONLINE_BOUND_MS,
  });
  await fleet.stopAgents();

  progress("starting the gateway");
  const adminToken = randomBytes(24).toString("hex");
  const gw = await startGatewayProcess(
    { redis: { url: redis.url }, prosody },
    {
      ...args.gatewayEnv,
      GATEWAY_ADMIN_TOKEN: adminToken,
      ...redis.env,
      ...(args.gatewayNodeOptions ? { NODE_OPTIONS: args.gatewayNodeOptions } : {}),
    },
    { port: await freePort(), nodeArgs: [...profileArgs(args.cpuProfDir), ...build.gatewayArgs] },
  );
  teardown.add("gateway", () => gw.stop());
  progress(`starting the agent process again; waiting for the gateway to count the ${n} devices online`);
  await fleet.startAgents();
  const onlineMs = await fleet.waitOnlineAt(gw.url, ONLINE_BOUND_MS);
  progress(`all ${n} devices online at the gateway ${(onlineMs / 1000).toFixed(1)} s after the agent process started`);
  // (b) and (d) are the same load on the same gateway; only the devices' transport differs.
  const gatewayPid = gw.child.pid;
  const throughGateway = (label: string, transport: "xmpp" | "http") =>
    runner.measure({
      label,
      driver: { mode: "http", baseUrl: gw.url },
      processes: { ...pids(), gateway: [gatewayPid] },
      retryForMs: 0,
      wrap: (run) => measureGatewayPath(gw, transport, run),
    });
  const b = await throughGateway("(b) gateway XMPP path", "xmpp");

  // (c) right before (d), as (a) before (b) (see the head of this file); the gateway and agents idle meanwhile.
  progress("starting the bare http-proxy-3 proxy");
  const proxyConfig: ProxyConfig = { targets: { ...fleet.servers }, maxSocketsPerDevice: PROXY_SOCKETS_PER_DEVICE };
  const proxy = WorkerProcess.start("proxy", new URL("./proxy-worker.ts", import.meta.url), proxyConfig);
  teardown.add("proxy", () => proxy.stop());
  const { url: proxyUrl } = (await proxy.next("ready", 30_000)) as unknown as ProxyReady;
  const c = await runner.measure({
    label: "(c) bare http-proxy-3",
    driver: { mode: "http", baseUrl: proxyUrl },
    processes: { ...pids(), proxy: [proxy.pid] },
    retryForMs: 0,
  });
  await proxy.stop();

  progress(`registering the ${n} devices as transport "http" through the admin API`);
  await registerHttp(gw, adminToken, fleet);
  const d = await throughGateway("(d) gateway HTTP pass-through", "http");

  const loaded: FourPaths = { a: a.loaded, b: b.loaded, c: c.loaded, d: d.loaded };
  const unloaded: FourPaths | null =
    a.unloaded && b.unloaded && c.unloaded && d.unloaded ? { a: a.unloaded, b: b.unloaded, c: c.unloaded, d: d.unloaded } : null;
  return {
    startedAt,
    machine: { cpus: os.cpus().length, node: process.version, clockTicksPerSecond: hz },
    settings: {
      durationS: args.durationS,
      warmupS: args.warmupS,
      concurrency: CONCURRENCY,
      devices: n,
      redis: args.paths.redis,
      unloaded: runner.unloaded ? { warmupRequests: runner.unloaded.warmupRequests, requests: runner.unloaded.requests } : null,
      gatewayEnv: args.gatewayEnv,
    },
    arrangement: {
      gateway:
        "its own process: the compiled gateway/main.ts under node --enable-source-maps, as `npm start` runs it (admin API on, logs silent), started after (a), idle in (c)" +
        (args.gatewayNodeOptions ? `, NODE_OPTIONS=${args.gatewayNodeOptions}` : "") +
        Object.entries(args.gatewayEnv)
          .map(([name, value]) => `, ${name}=${value}`)
          .join(""),
      proxy: `child node process, (c) only: http-proxy-3 with a keep-alive http.Agent (${PROXY_SOCKETS_PER_DEVICE} sockets per device)`,
      prosody: "local-stack child process, shared by every path (idle in (c) and (d))",
      redis: `${redis.description}; used by the gateway, (b) and (d); its CPU is the sum over those processes`,
      devices: `child node process: one HTTP server answering for all ${n} devices, each on a listening port of its own; (c) and (d) call them directly`,
      agent: `ONE device agent process (adapters/device-agent/main.ts under tsx, AGENT_FLEET_FILE) for all ${n} devices, serving (a) and (b), idle in (c) and (d)`,
      load: "child node process per path and shape: (a) bare @xmpp/component requester, (b) (c) (d) node:http keep-alive clients",
      ...(args.cpuProfDir
        ? {
            profiling: `the gateway process was CPU-profiled from start to exit (one file in ${args.cpuProfDir}): the numbers are not comparable`,
          }
        : {}),
    },
    ...loaded,
    unloaded,
    comparison: compare(loaded.a, loaded.b),
    httpComparison: compare(loaded.c, loaded.d),
    targets: pathTargets({ ...loaded, unloaded }, args.cpuProfDir ? "the gateway was CPU-profiled: not comparable" : undefined),
  };
}
