// The default run: four paths, on the same Prosody, Redis and simulated devices, with the same load (64
// closed-loop clients over N devices, `--devices`, 10 by default, asked round robin; same warm-up and
// duration):
//   (a) raw IQ round trip            a bare @xmpp/component ↔ device agents: the baseline of (b)
//   (b) gateway XMPP path            HTTP clients → gateway → XEP-0332 over Prosody → agents → device servers
//   (c) bare http-proxy-3            HTTP clients → a minimal http-proxy-3 → device servers: the baseline of (d)
//   (d) gateway HTTP pass-through    HTTP clients → gateway (devices registered `transport: "http"`) → device servers
// Each path is measured with its baseline as a pair, (a) with (b), then (c) with (d): their measured windows
// cut in slices of about 2 s that alternate (runs.ts, measure.ts), so that a busy spell of the machine,
// which moves every process's CPU per request alike, falls on both terms of a ratio rather than on one.
// Then each path of the pair unloaded (unless --no-latency): one client, one request at a time, a fixed
// count; what the gateway adds to a single request. Then the performance targets (targets.ts), each met or
// missed.
//
// How the processes are arranged, so that the gateway is measured alone:
//   this process   the orchestration, which only waits and reads /proc while the load runs
//   gateway        its own process: the compiled gateway/main.ts under plain node, as `npm start` runs it
//                  (bench/common/compiled.ts; tsx would add its loader and a name on every function), logs
//                  silent, on a port picked beforehand (a silent gateway cannot tell the one it got)
//   prosody        its own process (local stack), shared by every path, with two components: the gateway's
//                  and the baseline's, for the bare component of (a)
//   redis          `--redis`: one redis-server, a Sentinel deployment or a Cluster (redis.ts), used by the
//                  gateway only; its CPU is the sum over every redis-server process of it
//   devices        child `node --import tsx bench/ratios/devices-worker.ts`: every device's HTTP server, one
//                  listening port (origin) per device; (c) and (d) are pointed at them
//   agent          TWO device agent processes (the shipped agent under tsx, AGENT_FLEET_FILE), each for every
//                  device (fleet.ts): one serves the gateway's component, in (b), the other the baseline's, in
//                  (a); an agent serves one component domain only, and both are up while (a) and (b) alternate
//   proxy          child `node --import tsx bench/ratios/proxy-worker.ts`, up during (c) and (d)
//   load           child `node --import tsx bench/ratios/load-worker.ts`, one per path and shape: for (a) a
//                  bare @xmpp/component that is its own load generator, for (b) (c) (d) keep-alive GETs of
//                  `/devices/{id}/TEMPERATURE` (bench/common/http-get.ts: a lean client, not node:http's)
// The gateway starts first and the agents after it, so that it hears every device's presence; the pair
// (a)-(b) waits until it counts them all online. (b) runs with every device on XMPP (no registry entries:
// DEFAULT_TRANSPORT); then the devices are registered `transport: "http"` through the admin API, and (d)
// runs on the same gateway. The gateway's own metrics confirm afterwards which transport served each path.
// CPU seconds per process are read from /proc/PID/stat at the edges of each measured window, and added up.
import { randomBytes } from "node:crypto";
import os from "node:os";
import { DEFAULT_COMPONENT, startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
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
import { CONCURRENCY, pathRunner, type PathSpec } from "./runs.js";
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
 * Runs `run` and checks, from the gateway's metrics, that `transport` served the gateway's path of it: at
 * least the loaded windows' successful requests, and none on any other transport. (A check of the set-up,
 * not of timings.)
 */
async function servedBy<T>(gw: GatewayProcess, transport: string, run: () => Promise<T>, path: (runs: T) => PathResult): Promise<T> {
  const before = await answeredByTransport(gw);
  const runs = await run();
  const after = await answeredByTransport(gw);
  const result = path(runs);
  const delta = (t: string): number => (after[t] ?? 0) - (before[t] ?? 0);
  const others = Object.keys(after).filter((t) => t !== transport && delta(t) > 0);
  if (delta(transport) < result.load.completed || others.length > 0) {
    const seen = Object.keys(after)
      .map((t) => `${t}: ${delta(t)}`)
      .join(", ");
    throw new Error(`${result.label}: expected every request on transport ${transport}; the gateway answered 2xx ${seen || "nothing"}`);
  }
  return runs;
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
  // The gateway's component first (the gateway connects to the first), then the bare component of (a), its
  // domain as long as the gateway's, as every stanza of (a) and (b) carries one.
  const components = [DEFAULT_COMPONENT, { domain: "rawcomp.localhost", secret: randomBytes(12).toString("hex") }];
  const [p, r] = await Promise.allSettled([startProsody({ components }), startBenchRedis(args.paths.redis)]);
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
  const baseline = prosody.components[1];
  if (!baseline) throw new Error("the local Prosody has no baseline component");
  const width = String(n - 1).length;
  const named = (prefix: string): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(width, "0")}`);
  // The baseline's accounts as long as the gateway's, so that (a) and (b) carry stanzas of the same size.
  const ids = named("bench");
  const baselineIds = named("basis");

  progress(`creating ${2 * n} accounts (${n} devices, twice), starting ${n} device servers`);
  const fleet = await startBenchFleet(prosody, { ids, baselineIds }, teardown);

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
  progress(`starting the two agent processes; waiting for the gateway to count the ${n} devices online`);
  await fleet.startAgents();
  const onlineMs = await fleet.waitOnlineAt(gw.url, ONLINE_BOUND_MS);
  progress(`all ${n} devices online at the gateway ${(onlineMs / 1000).toFixed(1)} s after the agent processes started`);

  const runner = pathRunner(args, fleet, hz, teardown);
  const common = (agent: number | undefined): PidGroups => ({
    gateway: undefined,
    proxy: undefined,
    prosody: [prosody.pid],
    redis: redis.pids,
    devices: [fleet.devicesPid],
    agent: agent === undefined ? undefined : [agent],
  });
  // (b) and (d) are the same load on the same gateway; only the devices' transport differs.
  const throughGateway = (label: string): PathSpec => ({
    label,
    driver: { mode: "http", baseUrl: gw.url },
    ids,
    processes: { ...common(fleet.agentPid()), gateway: [gw.child.pid] },
    retryForMs: 0,
  });

  // (a) and (b): the baseline's agent may still be logging its devices in; (a)'s load worker asks each
  // device until it answers.
  const ab = await servedBy(
    gw,
    "xmpp",
    () =>
      runner.measurePair(
        {
          label: "(a) raw IQ round trip",
          driver: {
            mode: "raw-iq",
            componentService: prosody.componentService,
            componentDomain: baseline.domain,
            componentSecret: baseline.secret,
            deviceJidTemplate: `{id}@${prosody.vhost}/agent`,
          },
          ids: fleet.baselineIds,
          processes: common(fleet.baselineAgentPid()),
          retryForMs: ONLINE_BOUND_MS,
        },
        throughGateway("(b) gateway XMPP path"),
      ),
    (runs) => runs.second.loaded,
  );

  progress(`starting the bare http-proxy-3 proxy; registering the ${n} devices as transport "http" through the admin API`);
  const proxyConfig: ProxyConfig = { targets: { ...fleet.servers }, maxSocketsPerDevice: PROXY_SOCKETS_PER_DEVICE };
  const proxy = WorkerProcess.start("proxy", new URL("./proxy-worker.ts", import.meta.url), proxyConfig);
  teardown.add("proxy", () => proxy.stop());
  const { url: proxyUrl } = (await proxy.next("ready", 30_000)) as unknown as ProxyReady;
  await registerHttp(gw, adminToken, fleet);
  const cd = await servedBy(
    gw,
    "http",
    () =>
      runner.measurePair(
        {
          label: "(c) bare http-proxy-3",
          driver: { mode: "http", baseUrl: proxyUrl },
          ids,
          processes: { ...common(undefined), proxy: [proxy.pid] },
          retryForMs: 0,
        },
        throughGateway("(d) gateway HTTP pass-through"),
      ),
    (runs) => runs.second.loaded,
  );
  await proxy.stop();
  const [a, b, c, d] = [ab.first, ab.second, cd.first, cd.second];

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
      slices: runner.slices,
      unloaded: runner.unloaded ? { warmupRequests: runner.unloaded.warmupRequests, requests: runner.unloaded.requests } : null,
      gatewayEnv: args.gatewayEnv,
    },
    arrangement: {
      gateway:
        "its own process: the compiled gateway/main.ts under node --enable-source-maps, as `npm start` runs it (admin API on, logs silent)" +
        (args.gatewayNodeOptions ? `, NODE_OPTIONS=${args.gatewayNodeOptions}` : "") +
        Object.entries(args.gatewayEnv)
          .map(([name, value]) => `, ${name}=${value}`)
          .join(""),
      proxy: `child node process, up while (c) and (d) alternate: http-proxy-3 with a keep-alive http.Agent (${PROXY_SOCKETS_PER_DEVICE} sockets per device)`,
      prosody: "local-stack child process, shared by every path (idle in (c) and (d))",
      redis: `${redis.description}; used by the gateway, (b) and (d); its CPU is the sum over those processes`,
      devices: `child node process: one HTTP server answering for all ${n} devices, each on a listening port of its own; (c) and (d) call them directly`,
      agent: `TWO device agent processes (adapters/device-agent/main.ts under tsx, AGENT_FLEET_FILE), each for all ${n} devices: one serving the gateway's component, counted in (b) and (d), the other the baseline's, counted in (a)`,
      windows: `each path's measured window in ${runner.slices} slices, alternating with its baseline's in the order a b b a a b…, each slice after a ${args.warmupS} s warm-up (the first) or a short ramp; CPU and requests added up over the slices`,
      load: "child node process per path and shape: (a) bare @xmpp/component requester, (b) (c) (d) lean keep-alive HTTP/1.1 clients (bench/common/http-get.ts)",
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
