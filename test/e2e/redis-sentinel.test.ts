// A gateway on Redis Sentinel (REDIS_SENTINELS, REDIS_SENTINEL_NAME; README, "Redis Sentinel"): requests are
// served, the primary crashes, the Sentinels promote the replica, and the gateway follows by itself: readiness
// goes unready and ready again, requests are served again, its Lua scripts run on the new primary by EVALSHA
// after at most one EVAL each (no NOSCRIPT storm, no EVAL on every call), and its reply bus is subscribed on
// the new primary.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { pino } from "pino";
import { RedisStore } from "../../gateway/redis/client.js";
import { pollUntil } from "../../local-stack/ports.js";
import { DEFAULT_COMPONENT, startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
import { redisCommand } from "../../local-stack/redis.js";
import { startRedisSentinel, type SentinelDeployment } from "../../local-stack/redis-sentinel.js";
import { echoDevice } from "../helpers/echo-device.js";
import { commandCounts, serveEveryDevice } from "../helpers/redis-probes.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { Teardown } from "../helpers/stack.js";

const DEVICES = ["sen-0", "sen-1", "sen-2", "sen-3"];
/** Prosody lets one connection hold a component domain: the second gateway has its own. */
const SECOND_COMPONENT = { domain: "gateway-2.localhost", secret: "second-secret" };
/** Requests before and after the failover: a bounded load, enough to run every script of the request path. */
const ROUNDS = 10;
/** Bounds for a loaded machine (a crash is noticed after 1 s, the client reconnects with up to 5 s of backoff). */
const FAILOVER_BOUND_MS = 60_000;

/** Subscribers of `channel` on the node at `port` (PUBSUB NUMSUB). */
async function subscribers(port: number, channel: string): Promise<number> {
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await client.connect();
    const reply = (await client.pubsub("NUMSUB", channel)) as [string, number];
    return Number(reply[1]);
  } finally {
    client.disconnect();
  }
}

/**
 * The connections on the Sentinels named `name` (a gateway names its Sentinel connections as its data
 * connections, CLIENT SETNAME), and how many of them are subscribed to something (ioredis' failover
 * detector subscribes to +switch-master).
 */
async function sentinelConnections(sentinel: SentinelDeployment, name: string): Promise<{ open: number; subscribed: number }> {
  const lists = await Promise.all(sentinel.sentinelPorts.map((port) => redisCommand(port, ["CLIENT", "LIST"])));
  const named = lists.flatMap((list) => list.split("\n").filter((line) => line.includes(` name=${name} `)));
  return { open: named.length, subscribed: named.filter((line) => / sub=[1-9]/.test(line)).length };
}

describe("the gateway on Redis Sentinel follows a failover", () => {
  const teardown = new Teardown();
  let sentinel: SentinelDeployment;
  let prosody: ProsodyServer;
  let gw: RunningGateway;

  before(async () => {
    const [s, p] = await Promise.allSettled([startRedisSentinel(), startProsody({ components: [DEFAULT_COMPONENT, SECOND_COMPONENT] })]);
    if (s.status === "fulfilled") sentinel = teardown.stopLater("redis sentinel", s.value);
    if (p.status === "fulfilled") prosody = teardown.stopLater("prosody", p.value);
    if (s.status === "rejected") throw s.reason;
    if (p.status === "rejected") throw p.reason;
    gw = teardown.stopLater(
      "gateway",
      await startGateway(
        { redis: { url: "" }, prosody },
        { REDIS_URL: undefined, REDIS_SENTINELS: sentinel.sentinelList, REDIS_SENTINEL_NAME: sentinel.name },
      ),
    );
    teardown.stopLater("fleet", await startFleet(prosody, DEVICES, (id) => echoDevice(id)));
  });
  after(() => teardown.run());

  async function readiness(): Promise<{ status: number; redis: boolean | undefined }> {
    const res = await fetch(`${gw.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { checks: Record<string, boolean> };
    return { status: res.status, redis: body.checks.redis };
  }

  it("serves, goes unready when the primary crashes, is ready and serves again on the promoted replica", async () => {
    assert.equal(gw.config.redis.sentinel?.sentinels.length, 3);
    for (let i = 0; i < ROUNDS; i++) await serveEveryDevice(gw.url, DEVICES, "sentinel");
    assert.deepEqual(await readiness(), { status: 200, redis: true });

    const oldPrimary = await sentinel.primaryPort();
    const replica = sentinel.dataPorts.find((p) => p !== oldPrimary);
    assert.ok(replica !== undefined);
    // The replica's counts before it is promoted (replication applies the scripts' effects, not EVAL).
    const before = await commandCounts(replica);

    const crashedAt = Date.now();
    assert.equal(await sentinel.killPrimary(), oldPrimary);
    await pollUntil("the gateway to report Redis unready", async () => (await readiness()).status === 503, {
      timeoutMs: FAILOVER_BOUND_MS,
      intervalMs: 10,
    });
    assert.deepEqual(await readiness().then((r) => r.redis), false);
    const promoted = await sentinel.waitForNewPrimary(oldPrimary, FAILOVER_BOUND_MS);
    assert.equal(promoted, replica, "the Sentinels promoted the replica");
    await pollUntil("the gateway to be ready again", async () => (await readiness()).status === 200, {
      timeoutMs: FAILOVER_BOUND_MS,
      intervalMs: 25,
    });
    const readyAt = Date.now();
    for (let i = 0; i < ROUNDS; i++) await serveEveryDevice(gw.url, DEVICES, "sentinel");
    console.log(
      `[redis-sentinel] primary crashed → gateway ready on the promoted replica in ${readyAt - crashedAt} ms; ` +
        `served again ${Date.now() - crashedAt} ms after the crash`,
    );

    // Every script the gateway defined is sent by EVAL at most once on the new primary's connection, and
    // runs by EVALSHA after that: no EVAL per call, no NOSCRIPT replies beyond one per script.
    const scripts = Object.keys((gw.gateway.redis.client as unknown as { scriptsSet: Record<string, unknown> }).scriptsSet).length;
    assert.ok(scripts > 0, "the gateway defined its scripts");
    const afterFailover = await commandCounts(promoted);
    const evals = afterFailover.eval - before.eval;
    const evalshas = afterFailover.evalsha - before.evalsha;
    const noscripts = afterFailover.noscript - before.noscript;
    console.log(`[redis-sentinel] on the new primary: ${evals} EVAL, ${evalshas} EVALSHA, ${noscripts} NOSCRIPT (${scripts} scripts)`);
    assert.ok(evals <= scripts, `at most one EVAL per script on the new primary: ${evals} EVAL for ${scripts} scripts`);
    assert.ok(evalshas > evals, `the scripts ran by EVALSHA afterwards: ${evalshas} EVALSHA, ${evals} EVAL`);
    assert.ok(noscripts <= scripts, `at most one NOSCRIPT per script: ${noscripts}`);

    // The reply bus's own connection (a duplicate of the Sentinel client) followed the primary too.
    const channel = gw.gateway.redis.keys.replyChannel(gw.config.instanceId);
    await pollUntil(
      `the reply bus to be subscribed to ${channel} on the new primary`,
      async () => (await subscribers(promoted, channel)) === 1,
      {
        timeoutMs: FAILOVER_BOUND_MS,
        intervalMs: 50,
      },
    );
  });

  it("a stopped gateway leaves no connection to the Sentinels open (quit() alone leaves the failover detector's)", async () => {
    const second = await startGateway(
      { redis: { url: "" }, prosody: { ...prosody, components: [SECOND_COMPONENT] } },
      {
        REDIS_URL: undefined,
        REDIS_SENTINELS: sentinel.sentinelList,
        REDIS_SENTINEL_NAME: sentinel.name,
        GATEWAY_INSTANCE_ID: "sen-second",
      },
    );
    // Its connections are told apart from the first gateway's by their name, on the primary as on the
    // Sentinels: the first gateway's detectors may still be subscribing again after the failover above.
    const name = "gateway:sen-second";
    let stopped = false;
    try {
      // Every connection of the second gateway (named after it on the primary) has a failover detector subscribed
      // on each Sentinel before it is stopped: a detector still subscribing when its connection closes is left
      // behind by ioredis, and that is not what this test is about.
      const primary = await sentinel.primaryPort();
      const subscribed = await pollUntil("every connection's failover detector of the second gateway to subscribe", async () => {
        const list = await redisCommand(primary, ["CLIENT", "LIST"]);
        const connections = list.split("\n").filter((line) => line.includes(` name=${name} `)).length;
        const onSentinels = await sentinelConnections(sentinel, name);
        return connections > 0 && onSentinels.subscribed === connections * sentinel.sentinelPorts.length
          ? onSentinels.subscribed
          : undefined;
      });
      await second.stop();
      stopped = true;
      await pollUntil(
        `the Sentinels to lose every connection of the stopped gateway (${subscribed} subscribed)`,
        async () => (await sentinelConnections(sentinel, name)).open === 0,
        { timeoutMs: 10_000 },
      );
    } finally {
      if (!stopped) await second.stop();
    }
  });

  // Last: it leaves two Sentinels of three.
  it("a dead Sentinel is logged, not printed to stderr as an unhandled error of the failover detector's connection", async (t) => {
    const warnings: Array<{ event?: string; err?: string }> = [];
    const sink = { write: (line: string) => warnings.push(JSON.parse(line) as { event?: string; err?: string }) };
    const stderr = t.mock.method(console, "error", () => undefined);
    const unhandled = () => stderr.mock.calls.filter((c) => String(c.arguments[0]).includes("Unhandled error event"));
    await sentinel.killSentinel(sentinel.sentinelPorts[2]!);
    // Every connection to the primary starts a failover detector, which subscribes on each Sentinel listed
    // (the dead one included) over connections of its own, outside the client's error listener.
    const store = new RedisStore(
      {
        ...gw.config.redis,
        sentinel: { name: sentinel.name, sentinels: sentinel.sentinelPorts.map((port) => ({ host: "127.0.0.1", port })), tls: false },
      },
      { logger: pino({ level: "warn" }, sink) },
    );
    try {
      await store.start();
      await pollUntil(
        "the failover detector's error about the dead Sentinel, in the log or (before) on stderr",
        () => warnings.some((w) => w.event === "sentinel-error") || unhandled().length > 0,
        { timeoutMs: 10_000 },
      );
      assert.deepEqual(
        unhandled().map((c) => String(c.arguments[1]).split("\n")[0]),
        [],
        "nothing printed as an unhandled error event",
      );
      assert.ok(store.ready, "the store is connected to the primary all the same");
    } finally {
      await store.stop();
    }
  });
});
