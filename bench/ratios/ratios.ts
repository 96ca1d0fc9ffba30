// The default run: four paths, one after the other, on the same Prosody, Redis and simulated devices, with
// the same load (64 closed-loop clients over 10 devices, same warm-up and duration):
//   (a) raw IQ round trip            a bare @xmpp/component ↔ device agents: the baseline of (b)
//   (b) gateway XMPP path            HTTP clients → gateway → XEP-0332 over Prosody → agents → device servers
//   (c) bare http-proxy-3            HTTP clients → a minimal http-proxy-3 → device servers: the baseline of (d)
//   (d) gateway HTTP pass-through    HTTP clients → gateway (devices registered `transport: "http"`) → device servers
//
// How the processes are arranged, so that the gateway is measured alone:
//   this process   the gateway (startGateway, in-process) and the orchestration, which only waits and
//                  reads /proc while the load runs
//   prosody        its own process (test harness), shared by every path
//   redis-server   its own process (test harness), used by the gateway only
//   devices        child `node --import tsx bench/ratios/devices-worker.ts`: 10 device HTTP servers + 10 agents;
//                  it reports the servers' URLs, which (c) and (d) are pointed at
//   proxy          child `node --import tsx bench/ratios/proxy-worker.ts`, up during (c) only
//   load           child `node --import tsx bench/ratios/load-worker.ts`, one per path: for (a) a bare
//                  @xmpp/component that is its own load generator, for (b) (c) (d) 64 keep-alive node:http
//                  clients asking for `/devices/{id}/TEMPERATURE`
// (a) and (c) run first, while no gateway is up: the bare component of (a) must hold the gateway's component
// domain, since the agents serve requests from that domain only, and Prosody admits one connection per
// domain. Then the gateway starts (with an admin token), (b) runs with every device on XMPP (no registry
// entries: DEFAULT_TRANSPORT), the devices are registered `transport: "http"` through the admin API, and (d)
// runs on the same gateway. The gateway's own metrics confirm afterwards which transport served each path.
// CPU seconds per process are read from /proc/PID/stat at the edges of the measured window.
import { randomBytes } from "node:crypto";
import os from "node:os";
import { startGateway, type RunningGateway } from "../../test/helpers/gateway.js";
import { startStack, type Teardown } from "../../test/helpers/stack.js";
import { adminClient } from "../common/admin.js";
import type { BenchArgs } from "../common/args.js";
import { clockTicksPerSecond } from "../common/cpu.js";
import { TEMPERATURE_BODY } from "../common/device.js";
import { progress } from "../common/progress.js";
import { WorkerProcess } from "../common/worker-process.js";
import type { DevicesConfig, DevicesReady } from "./devices-worker.js";
import type { LoadConfig } from "./load-worker.js";
import { measurePath, type WindowHooks } from "./measure.js";
import { windowProfiler } from "./profile.js";
import type { ProxyConfig, ProxyReady } from "./proxy-worker.js";
import { compare, HTTP_TARGETS, TARGETS, type BenchReport, type PathResult } from "./report.js";

const CONCURRENCY = 64;
const DEVICE_COUNT = 10;
/** Connections per device in the bare proxy's pool: the default of the gateway's pass-through pool. */
const PROXY_SOCKETS_PER_DEVICE = 16;

/** Requests the gateway answered 2xx, by transport, from its own metrics (everything since it started). */
async function answeredByTransport(gw: RunningGateway): Promise<Record<string, number>> {
  const { values } = await gw.gateway.metrics.httpRequests.get();
  const out: Record<string, number> = {};
  for (const v of values) {
    if (v.labels.status_class !== "2xx") continue;
    const transport = String(v.labels.transport);
    out[transport] = (out[transport] ?? 0) + v.value;
  }
  return out;
}

/**
 * Runs one gateway path and checks, from the gateway's metrics, that `transport` served it: at least the
 * window's successful requests, and none on any other transport. (A check of the set-up, not of timings.)
 */
async function measureGatewayPath(
  gw: RunningGateway,
  transport: string,
  run: (hooks: WindowHooks) => Promise<PathResult>,
  profile: { dir: string; name: string } | undefined,
  teardown: Teardown,
): Promise<PathResult> {
  const before = await answeredByTransport(gw);
  const profiler = profile ? windowProfiler(profile.dir, profile.name) : undefined;
  if (profiler) teardown.add(`profiler ${profile?.name}`, () => profiler.close());
  const result = await run(profiler ? { onWindowStart: () => profiler.start(), onWindowEnd: () => profiler.stop() } : {});
  if (profiler) progress(`CPU profile of the gateway written to ${await profiler.done()}`);
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

export async function runRatios(args: BenchArgs, teardown: Teardown): Promise<BenchReport> {
  const startedAt = new Date().toISOString();
  const hz = clockTicksPerSecond();
  progress("starting Redis and Prosody");
  const stack = teardown.stopLater("stack", await startStack());
  const component = stack.prosody.components[0];
  if (!component) throw new Error("the harness Prosody has no component");
  const ids = Array.from({ length: DEVICE_COUNT }, (_, i) => `bench-${i}`);
  // The same passwords the fleet helper logs in with.
  await stack.prosody.createUsers(ids.map((id) => ({ username: id, password: `pw-${id}` })));

  progress(`starting ${DEVICE_COUNT} devices and their agents`);
  const devicesConfig: DevicesConfig = { service: stack.prosody.service, vhost: stack.prosody.vhost, gatewayDomain: component.domain, ids };
  const devices = WorkerProcess.start("devices", new URL("./devices-worker.ts", import.meta.url), devicesConfig);
  teardown.add("devices", () => devices.stop());
  const { servers } = (await devices.next("ready", 30_000)) as unknown as DevicesReady;
  const missing = ids.filter((id) => typeof servers?.[id] !== "string");
  if (missing.length > 0) throw new Error(`the devices worker reported no HTTP server for ${missing.join(", ")}`);

  const plan = {
    concurrency: CONCURRENCY,
    warmupMs: args.warmupS * 1000,
    durationMs: args.durationS * 1000,
    drainMs: 5_000,
    ids,
    expectBody: TEMPERATURE_BODY,
    requestTimeoutMs: 10_000,
  };
  const pids = { prosody: stack.prosody.pid, redis: stack.redis.pid, devices: devices.pid };

  progress(`(a) raw IQ round trip: ${args.warmupS} s warm-up + ${args.durationS} s`);
  const rawConfig: LoadConfig = {
    ...plan,
    mode: "raw-iq",
    componentService: stack.prosody.componentService,
    componentDomain: component.domain,
    componentSecret: component.secret,
    deviceJidTemplate: `{id}@${stack.prosody.vhost}/agent`,
  };
  const a = await measurePath("(a) raw IQ round trip", rawConfig, { gateway: undefined, proxy: undefined, ...pids }, hz, teardown);

  progress("starting the bare http-proxy-3 proxy");
  const proxyConfig: ProxyConfig = { targets: servers, maxSocketsPerDevice: PROXY_SOCKETS_PER_DEVICE };
  const proxy = WorkerProcess.start("proxy", new URL("./proxy-worker.ts", import.meta.url), proxyConfig);
  teardown.add("proxy", () => proxy.stop());
  const { url: proxyUrl } = (await proxy.next("ready", 30_000)) as unknown as ProxyReady;
  progress(`(c) bare http-proxy-3: ${args.warmupS} s warm-up + ${args.durationS} s`);
  const proxyLoad: LoadConfig = { ...plan, mode: "http", baseUrl: proxyUrl };
  const c = await measurePath("(c) bare http-proxy-3", proxyLoad, { gateway: undefined, proxy: proxy.pid, ...pids }, hz, teardown);
  await proxy.stop();

  progress("starting the gateway");
  const adminToken = randomBytes(24).toString("hex");
  const gw = teardown.stopLater("gateway", await startGateway(stack, { GATEWAY_ADMIN_TOKEN: adminToken }));
  devices.send("reconnect");
  await devices.next("reconnected", 30_000);
  const gatewayPids = { gateway: process.pid, proxy: undefined, ...pids };
  const stamp = startedAt.replace(/[:.]/g, "-");
  const profile = (path: string) => (args.cpuProfDir ? { dir: args.cpuProfDir, name: `gateway-${path}-${stamp}` } : undefined);

  // (b) and (d) are the same load on the same gateway; only the devices' transport differs.
  const throughGateway = (label: string, transport: "xmpp" | "http", key: string) => {
    progress(`${label}: ${args.warmupS} s warm-up + ${args.durationS} s`);
    const load: LoadConfig = { ...plan, mode: "http", baseUrl: gw.url };
    return measureGatewayPath(gw, transport, (hooks) => measurePath(label, load, gatewayPids, hz, teardown, hooks), profile(key), teardown);
  };
  const b = await throughGateway("(b) gateway XMPP path", "xmpp", "b");

  progress(`registering the ${DEVICE_COUNT} devices as transport "http" through the admin API`);
  const admin = adminClient(gw.url, adminToken);
  for (const id of ids) {
    const stored = await admin.put(id, { transport: "http", httpTarget: servers[id] });
    if (stored.transport !== "http" || stored.httpTarget !== servers[id]) {
      throw new Error(`the registry stored ${JSON.stringify(stored)} for ${id}`);
    }
  }

  const d = await throughGateway("(d) gateway HTTP pass-through", "http", "d");

  return {
    startedAt,
    machine: { cpus: os.cpus().length, node: process.version, clockTicksPerSecond: hz },
    settings: { durationS: args.durationS, warmupS: args.warmupS, concurrency: CONCURRENCY, devices: DEVICE_COUNT },
    arrangement: {
      gateway: "the bench process itself (startGateway in-process, admin API on); idle orchestration only during the window",
      proxy: `child node process, (c) only: http-proxy-3 with a keep-alive http.Agent (${PROXY_SOCKETS_PER_DEVICE} sockets per device)`,
      prosody: "harness child process, shared by every path (idle in (c) and (d))",
      redis: "harness child process; used by the gateway, (b) and (d)",
      devices: "child node process: device HTTP servers + device agents (@xmpp/client); (c) and (d) call the servers directly",
      load: "child node process per path: (a) bare @xmpp/component requester, (b) (c) (d) node:http keep-alive clients",
      ...(args.cpuProfDir ? { profiling: `the gateway was CPU-profiled during (b) and (d): their numbers are not comparable` } : {}),
    },
    a,
    b,
    c,
    d,
    comparison: compare(a, b, TARGETS),
    httpComparison: compare(c, d, HTTP_TARGETS),
  };
}
