// `npm run bench -- --capacity`: the per-request and per-item figures docs/capacity.md multiplies out to a
// fleet (1,000,000 devices, 20,000 requests/s), each measured against real servers:
//   1. Redis commands and Redis CPU per request, per kind of request (a GET over XMPP, a POST with an
//      Idempotency-Key, a `Prefer: respond-async` GET, the same to an offline device, which queues it, and a
//      GET through the HTTP pass-through), from INFO commandstats deltas over a batch of each;
//   2. Redis memory per item: a registry entry (admin API PUTs), an online device's presence (one agent
//      process connecting them all), an exchange in flight (requests held at slow devices), an idempotency
//      record, an asynchronous result, a queued request;
//   3. the XMPP servers: RSS per device connection and CPU per routed IQ (bench/ratios/raw-iq.ts), ejabberd and
//      Prosody, and what a presence re-announcement costs the gateway, Redis and the server;
//   4. with two gateways on one ejabberd component domain, what a reply costs Redis when ejabberd hands it to
//      the instance that does not own its exchange (it is forwarded to the owner).
//
// Processes: this one runs the gateway (in-process, as bench/ratios does; admin API on) and the clients, and
// reads the servers; Redis and Prosody (test harness), ejabberd (local-stack/ejabberd.ts), the device agents
// (bench/ratios/devices-worker.ts for ten devices; ONE agent process for the fleet, bench/fleet/connect.ts)
// and the device HTTP servers each run in their own. Redis's figures are its own (INFO, /proc of
// redis-server); a Redis core's capacity follows from its CPU per request, which the machine's other work
// does not change much, while rates would.
import { randomBytes } from "node:crypto";
import os from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { startEjabberd } from "../../local-stack/ejabberd.js";
import { pollUntil } from "../../local-stack/ports.js";
import { redisCommand } from "../../local-stack/redis.js";
import { startGateway, type RunningGateway } from "../../test/helpers/gateway.js";
import { startStack, type Teardown } from "../../test/helpers/stack.js";
import { adminClient } from "../common/admin.js";
import type { BenchArgs } from "../common/args.js";
import { clockTicksPerSecond, cpuNanoseconds } from "../common/cpu.js";
import { memoryOf, MIB } from "../common/proc.js";
import { progress } from "../common/progress.js";
import type { SlowDevicesConfig, SlowDevicesReady } from "../common/slow-devices-worker.js";
import { WorkerProcess } from "../common/worker-process.js";
import { monitorDuring, perItem, sum } from "./monitor.js";
import { diffStats, redisProbe, totalCalls } from "./redis-probe.js";
import {
  figuresOf,
  type CapacityReport,
  type ForwardingCost,
  type KindResult,
  type MemoryItem,
  type PresenceCost,
  type ServerFigures,
} from "./report.js";
import { sendBatch, type BatchResult } from "./requests.js";
import {
  asyncState,
  CONCURRENCY,
  connectOnce,
  expectAll,
  kind,
  monitored,
  MONITOR_SAMPLE,
  overBatch,
  rawIq,
  startDevices,
} from "./steps.js";

/** Devices of the request batches (and of the raw IQ round trips), one agent each. */
const DEVICE_COUNT = 10;
/** Registered devices that are never online: asynchronous requests to them are queued. */
const OFFLINE_DEVICES = 100;
const REGISTRY_ENTRIES = 5000;
/** Requests held at once at slow devices, 20 per device, and how long each device holds one. */
const HELD_PER_DEVICE = 20;
const HOLD_MS = 8000;
/** The presence window: the fleet re-announces itself every PRESENCE_INTERVAL_S for PRESENCE_WINDOW_S. */
const PRESENCE_INTERVAL_S = 2;
const PRESENCE_WINDOW_S = 10;
const CONNECT_BOUND_MS = 120_000;

const rssMiB = (pid: number): number => (memoryOf(pid)?.rssBytes ?? Number.NaN) / MIB;

export async function runCapacity(args: BenchArgs, teardown: Teardown): Promise<CapacityReport> {
  const startedAt = new Date().toISOString();
  const hz = clockTicksPerSecond();
  const n = args.capacity.requests;
  const fleetSize = args.capacity.devices;
  const notes: string[] = [];
  const loadavg = os.loadavg();

  progress("starting Redis and Prosody");
  const stack = teardown.stopLater("stack", await startStack());
  const redisPid = stack.redis.pid;
  const redisAt = { pid: redisPid, port: stack.redis.port };
  const ids = Array.from({ length: DEVICE_COUNT }, (_, i) => `cap-${i}`);
  await stack.prosody.createUsers(ids.map((id) => ({ username: id, password: `pw-${id}` })));
  progress(`starting ${DEVICE_COUNT} devices and their agents on Prosody`);
  const devices = startDevices("devices", stack.prosody, ids, teardown);
  const { servers } = await devices.ready;

  // Before the gateway: the raw component must hold the gateway's domain (Prosody admits one connection).
  const prosodyIq = await rawIq("prosody", stack.prosody, devices.worker.pid, ids, hz, teardown);

  progress("starting the gateway (in this process)");
  const adminToken = randomBytes(24).toString("hex");
  const gw = teardown.stopLater(
    "gateway",
    await startGateway(stack, { GATEWAY_ADMIN_TOKEN: adminToken, GATEWAY_DEVICE_MAX_IN_FLIGHT: String(HELD_PER_DEVICE + 12) }),
  );
  const prefix = gw.config.redis.keyPrefix;
  devices.worker.send("reconnect");
  await devices.worker.next("reconnected", 30_000);
  const probe = redisProbe(stack.redis.url);
  teardown.add("redis probe", () => probe.close());
  const admin = adminClient(gw.url, adminToken);
  const redisVersion = /^redis_version:(\S+)/m.exec(await redisCommand(stack.redis.port, ["INFO", "server"]))?.[1] ?? "?";

  progress("the gateway idle for 2 s");
  await probe.quiesce();
  const idle0 = totalCalls(await probe.commandStats());
  await delay(2000);
  const idleCommandsPerS = (totalCalls(await probe.commandStats()) - idle0) / 2;

  // 1. Kinds of request.
  const kinds: KindResult[] = [];
  const memory: MemoryItem[] = [];
  const dev = (i: number): string => ids[i % ids.length] ?? "cap-0";

  const get = await kind(probe, redisAt, gw, "xmpp_get", "GET over XMPP", n, (i) => ({
    method: "GET",
    path: `/devices/${dev(i)}/TEMPERATURE`,
  }));
  expectAll("GET over XMPP", get.batch, "200", n);
  kinds.push(get.result);

  const runId = randomBytes(3).toString("hex");
  const post = await kind(probe, redisAt, gw, "xmpp_post_idempotent", "POST with Idempotency-Key over XMPP", n, (i) => ({
    method: "POST",
    path: `/devices/${dev(i)}/TEMPERATURE`,
    headers: { "idempotency-key": `${runId}-${i}`, "content-type": "application/json" },
    body: JSON.stringify({ setpoint: 20 + (i % 5) }),
  }));
  expectAll("POST with Idempotency-Key", post.batch, "200", n);
  kinds.push(post.result);
  const idemSample = await probe.sampleKey(`${prefix}idem:*`);
  memory.push({
    key: "idempotency_record",
    label: "idempotency record (a 200 with a 35-byte body kept)",
    items: n,
    usedMemoryDeltaBytes: post.result.retainedBytesPerRequest * n,
    bytesPerItem: post.result.retainedBytesPerRequest,
    samples: idemSample ? [idemSample] : [],
  });

  const asyncGet = await kind(
    probe,
    redisAt,
    gw,
    "xmpp_async",
    "Prefer: respond-async GET over XMPP (202, then the result stored)",
    n,
    (i) => ({
      method: "GET",
      path: `/devices/${dev(i)}/TEMPERATURE`,
      headers: { prefer: "respond-async" },
    }),
  );
  expectAll("respond-async", asyncGet.batch, "202", n);
  kinds.push(asyncGet.result);
  const done = await asyncState(gw, asyncGet.batch.locations[n - 1] ?? "/requests/none");
  if (done.status !== 200) throw new Error(`the last asynchronous request reads ${done.status}: ${done.body.slice(0, 200)}`);
  const asyncSample = await probe.sampleKey(`${prefix}request:*`);
  memory.push({
    key: "async_result",
    label: "asynchronous result (a 200 with a 35-byte body)",
    items: n,
    usedMemoryDeltaBytes: asyncGet.result.retainedBytesPerRequest * n,
    bytesPerItem: asyncGet.result.retainedBytesPerRequest,
    samples: asyncSample ? [asyncSample] : [],
  });

  progress(`registering ${OFFLINE_DEVICES} devices that never come online`);
  const offline = Array.from({ length: OFFLINE_DEVICES }, (_, i) => `cap-off-${i}`);
  for (const id of offline) await admin.put(id, { transport: "xmpp" });
  const queued = await kind(
    probe,
    redisAt,
    gw,
    "xmpp_async_offline",
    "Prefer: respond-async GET to an offline device (queued)",
    n,
    (i) => ({
      method: "GET",
      path: `/devices/${offline[i % OFFLINE_DEVICES] ?? "cap-off-0"}/TEMPERATURE`,
      headers: { prefer: "respond-async" },
    }),
  );
  expectAll("respond-async to an offline device", queued.batch, "202", n);
  kinds.push(queued.result);
  const waiting = await asyncState(gw, queued.batch.locations[n - 1] ?? "/requests/none");
  if (!waiting.body.includes('"queued"'))
    throw new Error(`a request to an offline device reads ${waiting.status}: ${waiting.body.slice(0, 200)}`);
  const queueSample = await probe.sampleKey(`${prefix}queue:*`);
  const queuedRequestSample = await probe.sampleKey(`${prefix}request:*`);
  memory.push({
    key: "queued_request",
    label: "request queued for an offline device (bodiless GET; its request state included)",
    items: n,
    usedMemoryDeltaBytes: queued.result.retainedBytesPerRequest * n,
    bytesPerItem: queued.result.retainedBytesPerRequest,
    samples: [
      ...(queueSample ? [{ ...queueSample, note: `one device's list of ${Math.round(n / OFFLINE_DEVICES)}` }] : []),
      ...(queuedRequestSample ? [{ ...queuedRequestSample, note: "a request's state" }] : []),
    ],
  });

  progress(`registering the ${DEVICE_COUNT} devices as transport "http"`);
  for (const id of ids) await admin.put(id, { transport: "http", httpTarget: servers[id] });
  const proxied = await kind(probe, redisAt, gw, "http_get", "GET through the HTTP pass-through", n, (i) => ({
    method: "GET",
    path: `/devices/${dev(i)}/TEMPERATURE`,
  }));
  expectAll("GET through the HTTP pass-through", proxied.batch, "200", n);
  kinds.push(proxied.result);

  // 2. Registry entries, through the admin API as an operator imports a fleet.
  progress(`registry: ${REGISTRY_ENTRIES} entries through the admin API`);
  const putEntries = async (from: number, count: number): Promise<BatchResult> => {
    const t0 = performance.now();
    const outcomes: Record<string, number> = {};
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let i = from + next++; i < from + count; i = from + next++) {
          const outcome = await admin.put(`reg-${String(i).padStart(7, "0")}`, { transport: "xmpp", timeoutMs: 30_000 }).then(
            () => "ok",
            (err: Error) => err.message.slice(0, 80),
          );
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        }
      }),
    );
    return { outcomes, locations: [], elapsedMs: performance.now() - t0 };
  };
  const registry = await overBatch(probe, redisPid, () => putEntries(0, REGISTRY_ENTRIES), REGISTRY_ENTRIES);
  const registrySeen = await monitored(redisAt.port, probe, MONITOR_SAMPLE, () => putEntries(REGISTRY_ENTRIES, MONITOR_SAMPLE));
  if (registry.batch.outcomes.ok !== REGISTRY_ENTRIES) throw new Error(`registry PUTs: ${JSON.stringify(registry.batch.outcomes)}`);
  const entrySample = await probe.keyBytes(`${prefix}device:reg-0000000`);
  const setBytes = await probe.keyBytes(`${prefix}devices`);
  memory.push({
    key: "registry_entry",
    label: "registry entry",
    items: REGISTRY_ENTRIES,
    usedMemoryDeltaBytes: registry.retained * REGISTRY_ENTRIES,
    bytesPerItem: registry.retained,
    samples: [
      ...(entrySample !== undefined ? [{ key: `${prefix}device:reg-0000000`, bytes: entrySample }] : []),
      ...(setBytes !== undefined
        ? [{ key: `${prefix}devices`, bytes: setBytes, note: `set of all ${REGISTRY_ENTRIES + OFFLINE_DEVICES + DEVICE_COUNT} ids` }]
        : []),
    ],
  });
  kinds.push({
    key: "admin_put",
    label: "registry PUT through the admin API",
    requests: REGISTRY_ENTRIES,
    outcomes: registry.batch.outcomes,
    commandsPerRequest: registry.calls,
    totalCommandsPerRequest: Object.values(registry.calls).reduce((a, b) => a + b, 0),
    ...registrySeen,
    roundTripsPerRequest: sum(registrySeen.clientCommandsPerRequest),
    redisExecUsPerRequest: registry.execUs,
    redisCpuUsPerRequest: registry.cpuUs,
    retainedBytesPerRequest: registry.retained,
    elapsedMs: registry.batch.elapsedMs,
  });

  // 3. A fleet online through ONE agent process: presence entries in Redis, Prosody's memory per connection.
  const width = String(fleetSize - 1).length;
  const fleetIds = Array.from({ length: fleetSize }, (_, i) => `fl-${String(i).padStart(width, "0")}`);
  const slowConfig: SlowDevicesConfig = { ids: fleetIds, holdMs: HOLD_MS, layout: "shared" };
  const slow = WorkerProcess.start("slow devices", new URL("../common/slow-devices-worker.ts", import.meta.url), slowConfig);
  teardown.add("slow devices", () => slow.stop());
  const { servers: fleetServers } = (await slow.next("ready", 60_000)) as unknown as SlowDevicesReady;
  const onlineAtGateway = async (): Promise<number> => (await gw.gateway.metrics.devicesOnline.get()).values[0]?.value ?? 0;
  await probe.quiesce();
  const onlineBefore = await onlineAtGateway();
  const presenceMem0 = await probe.usedMemory();
  const prosodyRss0 = rssMiB(stack.prosody.pid);
  progress(`presence: ${fleetSize} devices online through ONE agent process on Prosody`);
  const fleet = await connectOnce(
    {
      server: stack.prosody,
      ids: fleetIds,
      servers: fleetServers,
      countOnline: async () => (await onlineAtGateway()) - onlineBefore,
      boundMs: CONNECT_BOUND_MS,
    },
    teardown,
    notes,
    "Prosody fleet",
  );
  if (fleet.connect.allOnlineMs === null) throw new Error(`only ${fleet.connect.online} of ${fleetSize} devices came online on Prosody`);
  await probe.quiesce();
  const presenceMem1 = await probe.usedMemory();
  const prosodyRss1 = rssMiB(stack.prosody.pid);
  const onlineSample = await probe.keyBytes(`${prefix}online`);
  const seenSample = await probe.sampleKey(`${prefix}seen:fl-*`);
  memory.push({
    key: "presence_entry",
    label: "online device (presence)",
    items: fleetSize,
    usedMemoryDeltaBytes: presenceMem1 - presenceMem0,
    bytesPerItem: (presenceMem1 - presenceMem0) / fleetSize,
    samples: [
      ...(onlineSample !== undefined
        ? [{ key: `${prefix}online`, bytes: onlineSample, note: `sorted set of ${fleetSize + DEVICE_COUNT} online JIDs` }]
        : []),
      ...(seenSample ? [seenSample] : []),
    ],
  });
  const prosodyFigures: ServerFigures = {
    server: "prosody",
    connections: fleetSize,
    connectMs: fleet.connect.allOnlineMs,
    rssBeforeMiB: prosodyRss0,
    rssAfterMiB: prosodyRss1,
    kibPerConnection: ((prosodyRss1 - prosodyRss0) * 1024) / fleetSize,
    iq: prosodyIq,
    presence: null,
  };

  // 4. Exchanges in flight: requests held at slow devices.
  const heldDevices = Math.min(fleetSize, Math.ceil(args.capacity.held / HELD_PER_DEVICE));
  const held = heldDevices * HELD_PER_DEVICE;
  progress(`in flight: ${held} requests held ${HOLD_MS / 1000} s by ${heldDevices} devices`);
  await probe.quiesce();
  const heldMem0 = await probe.usedMemory();
  const heldBatch = sendBatch(
    gw.url,
    held,
    0,
    (i) => ({ method: "GET", path: `/devices/${fleetIds[i % heldDevices] ?? ""}/TEMPERATURE` }),
    HOLD_MS + 20_000,
  );
  const inflight = async (): Promise<number> => (await gw.gateway.metrics.iqInflight.get()).values[0]?.value ?? 0;
  await pollUntil(`${held} exchanges in flight`, async () => (await inflight()) >= held, { timeoutMs: HOLD_MS - 1000, intervalMs: 50 });
  const heldMem1 = await probe.usedMemory();
  const corrSample = await probe.sampleKey(`${prefix}corr:*`);
  const toSample = await probe.sampleKey(`${prefix}exchanges:*`);
  const slotSample = await probe.keyBytes(`${prefix}inflight:${fleetIds[0] ?? ""}`);
  const heldDone = await heldBatch;
  expectAll("held requests", heldDone, "200", held);
  memory.push({
    key: "exchange_in_flight",
    label: "XMPP exchange in flight (correlation entry, its place by JID, the device slot)",
    items: held,
    usedMemoryDeltaBytes: heldMem1 - heldMem0,
    bytesPerItem: (heldMem1 - heldMem0) / held,
    samples: [
      ...(corrSample ? [corrSample] : []),
      ...(toSample ? [{ ...toSample, note: `${HELD_PER_DEVICE} exchanges` }] : []),
      ...(slotSample !== undefined
        ? [{ key: `${prefix}inflight:${fleetIds[0] ?? ""}`, bytes: slotSample, note: `${HELD_PER_DEVICE} slots` }]
        : []),
    ],
  });

  // 5. Presence re-announcements: the same fleet again, announcing itself every PRESENCE_INTERVAL_S.
  progress(`presence cost: ${fleetSize} devices re-announcing every ${PRESENCE_INTERVAL_S} s, ${PRESENCE_WINDOW_S} s window`);
  await fleet.agent.stop();
  await pollUntil("the fleet to go offline at the gateway", async () => (await onlineAtGateway()) <= onlineBefore, { timeoutMs: 60_000 });
  const chatty = await connectOnce(
    {
      server: stack.prosody,
      ids: fleetIds,
      servers: fleetServers,
      countOnline: async () => (await onlineAtGateway()) - onlineBefore,
      boundMs: CONNECT_BOUND_MS,
      presenceIntervalS: PRESENCE_INTERVAL_S,
    },
    teardown,
    notes,
    "Prosody fleet, presence every 2 s",
  );
  let presence: PresenceCost | null = null;
  if (chatty.connect.allOnlineMs === null)
    notes.push(`presence cost not measured: only ${chatty.connect.online} of ${fleetSize} came online`);
  else {
    await delay(PRESENCE_INTERVAL_S * 1000); // one full round after the connect's burst
    const s0 = await probe.commandStats();
    const c0 = { redis: cpuNanoseconds(redisPid), gateway: cpuNanoseconds(process.pid), prosody: cpuNanoseconds(stack.prosody.pid) };
    await delay(PRESENCE_WINDOW_S * 1000);
    const c1 = { redis: cpuNanoseconds(redisPid), gateway: cpuNanoseconds(process.pid), prosody: cpuNanoseconds(stack.prosody.pid) };
    const d = diffStats(s0, await probe.commandStats());
    const presences = (fleetSize * PRESENCE_WINDOW_S) / PRESENCE_INTERVAL_S;
    const sampleS = 2 * PRESENCE_INTERVAL_S;
    const seen = await monitorDuring(redisAt.port, () => delay(sampleS * 1000));
    const sampled = (fleetSize * sampleS) / PRESENCE_INTERVAL_S;
    const per = (a: number | undefined, b: number | undefined): number | null =>
      a === undefined || b === undefined ? null : (b - a) / 1000 / presences;
    presence = {
      devices: fleetSize,
      intervalS: PRESENCE_INTERVAL_S,
      windowS: PRESENCE_WINDOW_S,
      presences,
      commandsPerPresence: Object.fromEntries(Object.entries(d.calls).map(([name, c]) => [name, c / presences])),
      totalCommandsPerPresence: totalCalls(d) / presences,
      clientCommandsPerPresence: perItem(seen.client, sampled),
      scriptCommandsPerPresence: perItem(seen.script, sampled),
      roundTripsPerPresence: sum(seen.client) / sampled,
      redisCpuUsPerPresence: per(c0.redis, c1.redis),
      gatewayCpuUsPerPresence: per(c0.gateway, c1.gateway),
      prosodyCpuUsPerPresence: per(c0.prosody, c1.prosody),
    };
  }
  await chatty.agent.stop();
  await devices.worker.stop();
  await gw.stop();

  // 6. ejabberd: CPU per routed IQ (no gateway on it: the raw component alone holds the domain, so every reply
  // comes back to it) and memory per connection.
  progress("starting ejabberd");
  const ejabberd = teardown.stopLater("ejabberd", await startEjabberd());
  await ejabberd.createUsers(ids.map((id) => ({ username: id, password: `pw-${id}` })));
  const ejDevices = startDevices("devices on ejabberd", ejabberd, ids, teardown);
  await ejDevices.ready;
  const sessions = async (): Promise<number> => Number((await ejabberd.ctl(["connected_users_number"])).trim());
  const ejabberdIq = await rawIq("ejabberd", ejabberd, ejDevices.worker.pid, ids, hz, teardown);

  // 7. Gateways on ejabberd: one, then two on the same component domain, to see what a reply that lands on
  // the instance that does not own its exchange costs in Redis (it is forwarded: README, "Running several
  // instances"); then the fleet's memory on ejabberd and what a presence costs ejabberd.
  const ejPrefix = `cap-ej-${runId}:`;
  const onEjabberd = { redis: stack.redis, prosody: ejabberd };
  progress("starting gateway a on ejabberd");
  const gwA = teardown.stopLater("gateway a", await startGateway(onEjabberd, { REDIS_KEY_PREFIX: ejPrefix, GATEWAY_INSTANCE_ID: "a" }));
  const forwarded = async (): Promise<number> =>
    (await gwB?.gateway.metrics.repliesForwarded.get())?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
  let gwB: RunningGateway | undefined;
  const one = await kind(probe, redisAt, gwA, "xmpp_get_ejabberd", "GET over XMPP, ejabberd, one gateway", n, (i) => ({
    method: "GET",
    path: `/devices/${dev(i)}/TEMPERATURE`,
  }));
  expectAll("GET over XMPP on ejabberd", one.batch, "200", n);
  kinds.push(one.result);
  progress("starting gateway b on the same component domain");
  gwB = teardown.stopLater("gateway b", await startGateway(onEjabberd, { REDIS_KEY_PREFIX: ejPrefix, GATEWAY_INSTANCE_ID: "b" }));
  const forwarded0 = await forwarded();
  const two = await kind(
    probe,
    redisAt,
    gwA,
    "xmpp_get_ejabberd_2gw",
    "GET over XMPP, ejabberd, two gateways (replies forwarded)",
    n,
    (i) => ({
      method: "GET",
      path: `/devices/${dev(i)}/TEMPERATURE`,
    }),
  );
  expectAll("GET over XMPP on ejabberd, two gateways", two.batch, "200", n);
  kinds.push(two.result);
  // Both batches and their MONITOR samples went through a; b forwarded what ejabberd gave it.
  const forwardedShare = ((await forwarded()) - forwarded0) / (n + MONITOR_SAMPLE);
  const perForward = (a: number | null, b: number | null): number | null =>
    a === null || b === null || forwardedShare <= 0 ? null : (b - a) / forwardedShare;
  const forwarding: ForwardingCost = {
    forwardedShare,
    roundTripsPerForward: perForward(one.result.roundTripsPerRequest, two.result.roundTripsPerRequest),
    executedPerForward: perForward(one.result.totalCommandsPerRequest, two.result.totalCommandsPerRequest),
    redisCpuUsPerForward: perForward(one.result.redisCpuUsPerRequest, two.result.redisCpuUsPerRequest),
  };
  await ejDevices.worker.stop();
  await pollUntil("ejabberd to have no device sessions left", async () => (await sessions()) === 0, { timeoutMs: 30_000 });
  const ejRss0 = rssMiB(ejabberd.pid);
  progress(`ejabberd: ${fleetSize} devices online through ONE agent process`);
  const ejFleet = await connectOnce(
    { server: ejabberd, ids: fleetIds, servers: fleetServers, countOnline: sessions, boundMs: CONNECT_BOUND_MS },
    teardown,
    notes,
    "ejabberd fleet",
  );
  if (ejFleet.connect.allOnlineMs === null)
    throw new Error(`only ${ejFleet.connect.online} of ${fleetSize} devices came online on ejabberd`);
  const ejRss1 = rssMiB(ejabberd.pid);
  await ejFleet.agent.stop();
  await pollUntil("ejabberd to have no device sessions left", async () => (await sessions()) === 0, { timeoutMs: 30_000 });
  progress(`presence cost on ejabberd: ${fleetSize} devices re-announcing every ${PRESENCE_INTERVAL_S} s to two gateways`);
  const ejChatty = await connectOnce(
    {
      server: ejabberd,
      ids: fleetIds,
      servers: fleetServers,
      countOnline: sessions,
      boundMs: CONNECT_BOUND_MS,
      presenceIntervalS: PRESENCE_INTERVAL_S,
    },
    teardown,
    notes,
    "ejabberd fleet, presence every 2 s",
  );
  let ejabberdPresence: ServerFigures["presence"] = null;
  if (ejChatty.connect.allOnlineMs !== null) {
    await delay(PRESENCE_INTERVAL_S * 1000);
    const e0 = cpuNanoseconds(ejabberd.pid);
    const r0 = cpuNanoseconds(redisPid);
    await delay(PRESENCE_WINDOW_S * 1000);
    const e1 = cpuNanoseconds(ejabberd.pid);
    const r1 = cpuNanoseconds(redisPid);
    const presences = (fleetSize * PRESENCE_WINDOW_S) / PRESENCE_INTERVAL_S;
    ejabberdPresence = {
      presences,
      serverCpuUsPerPresence: e0 === undefined || e1 === undefined ? null : (e1 - e0) / 1000 / presences,
      redisCpuUsPerPresence: r0 === undefined || r1 === undefined ? null : (r1 - r0) / 1000 / presences,
    };
  } else notes.push(`ejabberd presence cost not measured: only ${ejChatty.connect.online} of ${fleetSize} came online`);
  await ejChatty.agent.stop();
  const ejabberdFigures: ServerFigures = {
    server: "ejabberd",
    connections: fleetSize,
    connectMs: ejFleet.connect.allOnlineMs,
    rssBeforeMiB: ejRss0,
    rssAfterMiB: ejRss1,
    kibPerConnection: ((ejRss1 - ejRss0) * 1024) / fleetSize,
    iq: ejabberdIq,
    presence: ejabberdPresence,
  };

  notes.push(
    "Redis CPU µs are redis-server's threads on a CPU (schedstat) per request, at 32 requests outstanding",
    `commands executed (INFO commandstats) count a script's inner commands as well as its EVALSHA; round trips are the gateway's own commands, from MONITOR over ${MONITOR_SAMPLE} more requests of each kind (presence: ${2 * PRESENCE_INTERVAL_S} s)`,
    "memory per item: INFO memory used_memory after minus before, divided by the items; MEMORY USAGE samples shown beside it",
    "the gateway runs in this process: its CPU per request is in docs/benchmark.md (the default run), not here",
  );
  const base = {
    startedAt,
    machine: { cpus: os.cpus().length, node: process.version, redis: redisVersion, loadavg },
    settings: { requests: n, devices: fleetSize, registryEntries: REGISTRY_ENTRIES, heldRequests: held, concurrency: CONCURRENCY },
    arrangement: {
      gateway: "this process (startGateway in-process, admin API on), as the default run has it",
      redis: "harness child process; INFO commandstats and memory read by a separate connection, its commands left out",
      prosody: "harness child process",
      ejabberd: "local-stack/ejabberd.ts, 23.01 on this machine; no gateway on it",
      devices: `${DEVICE_COUNT} device servers + agents in a child process (bench/ratios/devices-worker.ts); the fleet: ONE agent process, device servers in another`,
    },
    idleCommandsPerS,
    kinds,
    memory,
    servers: [prosodyFigures, ejabberdFigures],
    presence,
    forwarding,
    notes,
  };
  return { ...base, figures: figuresOf(base) };
}
