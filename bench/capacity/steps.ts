// The steps --capacity repeats (bench/capacity/capacity.ts): a batch of one kind of request with Redis read
// around it, the same again under MONITOR, raw IQ round trips on an XMPP server, a fleet connected once more
// when its agent process dies on the way.
import type { RunningGateway } from "../../test/helpers/gateway.js";
import type { Teardown } from "../../test/helpers/stack.js";
import { cpuNanoseconds } from "../common/cpu.js";
import { TEMPERATURE_BODY } from "../common/device.js";
import { progress } from "../common/progress.js";
import { WorkerProcess } from "../common/worker-process.js";
import { connectFleet, type FleetConnection, type FleetPlan, type FleetServer } from "../fleet/connect.js";
import type { LoadConfig } from "../ratios/load-worker.js";
import { measurePath } from "../ratios/measure.js";
import type { DevicesConfig, DevicesReady } from "./devices-worker.js";
import { monitorDuring, perItem, sum } from "./monitor.js";
import { diffStats, totalUsec, type RedisProbe } from "./redis-probe.js";
import type { KindResult, ServerFigures } from "./report.js";
import { sendBatch, type BatchResult, type RequestSpec } from "./requests.js";

/** Requests of a batch outstanding at once. */
export const CONCURRENCY = 32;
/** Requests of each kind sent again under MONITOR, to tell the gateway's commands from its scripts'. */
export const MONITOR_SAMPLE = 500;
/** Raw IQ round trips: warm-up and window, as `--quick` does for the default run. */
const IQ_WARMUP_MS = 1000;
const IQ_WINDOW_MS = 3000;

/** Counts what the gateway did in Redis over `run`: commands and CPU, per `n`, and the memory left. */
export async function overBatch(
  probe: RedisProbe,
  redisPid: number,
  run: () => Promise<BatchResult>,
  n: number,
): Promise<{ batch: BatchResult; calls: Record<string, number>; execUs: number; cpuUs: number | null; retained: number }> {
  await probe.quiesce();
  const stats0 = await probe.commandStats();
  const mem0 = await probe.usedMemory();
  const cpu0 = cpuNanoseconds(redisPid);
  const batch = await run();
  await probe.quiesce(); // asynchronous requests finish after their 202, slots are given back after the answer
  const cpu1 = cpuNanoseconds(redisPid);
  const stats1 = await probe.commandStats();
  const mem1 = await probe.usedMemory();
  const d = diffStats(stats0, stats1);
  const calls = Object.fromEntries(Object.entries(d.calls).map(([name, c]) => [name, c / n]));
  return {
    batch,
    calls,
    execUs: totalUsec(d) / n,
    cpuUs: cpu0 === undefined || cpu1 === undefined ? null : (cpu1 - cpu0) / 1000 / n,
    retained: (mem1 - mem0) / n,
  };
}

/** What MONITOR saw over a sample batch, per item: the gateway's own commands and its scripts' commands. */
export async function monitored(
  port: number,
  probe: RedisProbe,
  items: number,
  run: () => Promise<unknown>,
): Promise<Pick<KindResult, "clientCommandsPerRequest" | "scriptCommandsPerRequest" | "monitorSample">> {
  await probe.quiesce();
  const counts = await monitorDuring(port, async () => {
    await run();
    await probe.quiesce();
  });
  return {
    clientCommandsPerRequest: perItem(counts.client, items),
    scriptCommandsPerRequest: perItem(counts.script, items),
    monitorSample: items,
  };
}

export async function kind(
  probe: RedisProbe,
  redis: { pid: number; port: number },
  gw: RunningGateway,
  key: string,
  label: string,
  n: number,
  spec: (i: number) => RequestSpec,
): Promise<{ result: KindResult; batch: BatchResult }> {
  progress(`${label}: ${n} requests, ${CONCURRENCY} at a time, then ${MONITOR_SAMPLE} more under MONITOR`);
  const m = await overBatch(probe, redis.pid, () => sendBatch(gw.url, n, CONCURRENCY, spec), n);
  const seen = await monitored(redis.port, probe, MONITOR_SAMPLE, () => sendBatch(gw.url, MONITOR_SAMPLE, CONCURRENCY, (i) => spec(n + i)));
  const result: KindResult = {
    key,
    label,
    requests: n,
    outcomes: m.batch.outcomes,
    commandsPerRequest: m.calls,
    totalCommandsPerRequest: Object.values(m.calls).reduce((a, b) => a + b, 0),
    ...seen,
    roundTripsPerRequest: sum(seen.clientCommandsPerRequest),
    redisExecUsPerRequest: m.execUs,
    redisCpuUsPerRequest: m.cpuUs,
    retainedBytesPerRequest: m.retained,
    elapsedMs: m.batch.elapsedMs,
  };
  return { result, batch: m.batch };
}

/** Every answer must be `status`: a batch that failed measures the failure, not the request. */
export function expectAll(what: string, batch: BatchResult, status: string, n: number): void {
  if ((batch.outcomes[status] ?? 0) !== n)
    throw new Error(`${what}: expected ${n} answers ${status}, got ${JSON.stringify(batch.outcomes)}`);
}

/** The body of GET {location} on the gateway: the state of an asynchronous request. */
export async function asyncState(gw: RunningGateway, location: string): Promise<{ status: number; body: string }> {
  const res = await fetch(new URL(location, gw.url), { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text() };
}

export async function rawIq(
  label: string,
  server: FleetServer & { componentService: string; pid: number },
  devicesPid: number,
  ids: string[],
  hz: number,
  teardown: Teardown,
): Promise<ServerFigures["iq"]> {
  const component = server.components[0];
  if (!component) throw new Error(`${label}: no component`);
  progress(`${label}: raw IQ round trips, ${IQ_WARMUP_MS / 1000} s warm-up + ${IQ_WINDOW_MS / 1000} s`);
  const config: LoadConfig = {
    ids,
    expectBody: TEMPERATURE_BODY,
    requestTimeoutMs: 10_000,
    shape: { kind: "closed-loop", concurrency: 64, warmupMs: IQ_WARMUP_MS, durationMs: IQ_WINDOW_MS, drainMs: 5_000 },
    driver: {
      mode: "raw-iq",
      componentService: server.componentService,
      componentDomain: component.domain,
      componentSecret: component.secret,
      deviceJidTemplate: `{id}@${server.vhost}/agent`,
    },
    check: { retryForMs: 0 },
  };
  const r = await measurePath({ label, config, pids: { [label]: [server.pid], devices: [devicesPid] } }, hz, teardown);
  return { rate: r.load.rate, errors: r.load.errors, cpuMsPerRequest: r.cpuMsPerRequest };
}

export function startDevices(
  name: string,
  server: FleetServer,
  ids: string[],
  teardown: Teardown,
): { worker: WorkerProcess; ready: Promise<DevicesReady> } {
  const component = server.components[0];
  const config: DevicesConfig = { service: server.service, vhost: server.vhost, gatewayDomain: component?.domain ?? "", ids };
  const worker = WorkerProcess.start(name, new URL("./devices-worker.ts", import.meta.url), config);
  teardown.add(name, () => worker.stop());
  return { worker, ready: worker.next("ready", 60_000) as unknown as Promise<DevicesReady> };
}

/**
 * connectFleet, once more if the agent process died on the way: under a loaded machine a device's first
 * login can time out, and a stream error on its retry has been seen to take the whole agent process down
 * (an uncaught StreamError). The retry is noted in the report.
 */
export async function connectOnce(plan: FleetPlan, teardown: Teardown, notes: string[], where: string): Promise<FleetConnection> {
  try {
    return await connectFleet(plan, teardown);
  } catch (err) {
    const message = (err as Error).message;
    if (!message.startsWith("the agent process exited")) throw err;
    const line = message.split("\n").find((l) => l.includes("Error")) ?? "";
    notes.push(`${where}: the agent process died while connecting (${line.slice(0, 160)}); connected again with a new one`);
    progress(`${where}: the agent process died while connecting; once more`);
    return connectFleet(plan, teardown);
  }
}
