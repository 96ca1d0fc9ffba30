// Nothing is lost across failovers (README, "Redis Sentinel", "Redis Cluster" and "ejabberd cluster"): the
// mixed load of nothing-lost.test.ts (every method, some `Prefer: respond-async`, some keyed, some keys
// replayed) goes through HAProxy to two gateway processes that both serve one component domain on ejabberd,
// while faults are injected one after the other. Two runs:
//   1. Redis behind Sentinel, a two-node ejabberd cluster: gateway A attached to node 1 and B to node 2, half
//      the devices on each node (each agent given both nodes, its own first). One gateway instance is SIGKILLed
//      (and started again); the Redis primary is SIGKILLed and the Sentinels promote its replica (the gateways
//      follow by themselves); ejabberd node 1 is SIGKILLed with gateway A and half the devices on it: the
//      devices move to node 2, gateway A goes unready (it is given node 1 only), HAProxy sends all to B.
//   2. A Redis Cluster (three primaries, a replica each) and one ejabberd node: the primary holding a device's
//      keys is SIGKILLed and its replica takes over.
// The same ledger as nothing-lost.test.ts is checked and printed for each (test/helpers/ledger/run.ts), with
// the time to recover from each fault: every request exactly one answer, no key acting twice, every accepted
// asynchronous request settled the same on both instances.
//
// Asynchronous replication (README, "Redis Sentinel"): a write acknowledged by a primary and not yet copied to
// its replica is lost with it. On loopback a replica is microseconds behind, so these runs cannot show such a
// loss; `npm run bench -- --failover` measures it, and what REDIS_WAIT_REPLICAS costs to close it.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { RUNNING_GRACE_MS } from "../../gateway/delivery/idempotency.js";
import { RedisKeys } from "../../gateway/redis/keys.js";
import type { Env } from "../../lib/env.js";
import { startEjabberd, type EjabberdServer } from "../../local-stack/ejabberd.js";
import { startEjabberdCluster } from "../../local-stack/ejabberd-cluster.js";
import type { HaproxyServer } from "../../local-stack/haproxy.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startRedisCluster } from "../../local-stack/redis-cluster.js";
import { startRedisSentinel } from "../../local-stack/redis-sentinel.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { startFleet } from "../helpers/fleet.js";
import { gatewayEnv } from "../helpers/gateway.js";
import type { Target } from "../helpers/ledger/client.js";
import { assertAsyncSettled, assertEveryRequestAnswered, assertKeysActOnce, assertNoKeyStuck } from "../helpers/ledger/checks.js";
import { GatewayInstance } from "../helpers/ledger/gateway-instance.js";
import { startLoadBalancer } from "../helpers/ledger/load-balancer.js";
import { LedgerRun } from "../helpers/ledger/run.js";
import { Teardown } from "../helpers/stack.js";

const DEVICES = Array.from({ length: 8 }, (_, i) => `fo-dev${i}`);
const REQUEST_TIMEOUT_MS = 5_000;

/** What a run's set-up hands the suite: how to start each instance, and the faults to inject in turn. */
interface FailoverStack {
  /** The environment of gateway instance `ga` or `gb` (Redis and XMPP settings; the suite adds the rest). */
  env: Record<"ga" | "gb", Env>;
  /** Starts the devices once the gateways are up. */
  startDevices(handler: (id: string) => ReturnType<LedgerRun["book"]["handler"]>): Promise<void>;
  faults: Array<{ label: string; inject: (ctx: FaultContext) => Promise<string> }>;
}

interface FaultContext {
  a: GatewayInstance;
  b: GatewayInstance;
  lb: HaproxyServer;
  now(): number;
  /** Records a gateway instance killed at `at` (the connections it held may be lost until `until`). */
  gatewayKilled(kill: { at: number; until: number }): void;
}

/** SIGKILLs gateway instance `g`, waits until HAProxy has it DOWN or it is back, and starts it again. */
async function killGateway(g: GatewayInstance, ctx: FaultContext): Promise<string> {
  const old = g.incarnation;
  const kill = { at: ctx.now(), until: Infinity };
  ctx.gatewayKilled(kill);
  await g.kill();
  void pollUntil(`${old} DOWN in HAProxy`, async () => (await ctx.lb.serverStates())[g.name] === "DOWN", {
    timeoutMs: 60_000,
    intervalMs: 20,
  }).then(
    () => (kill.until = Math.min(kill.until, ctx.now())),
    () => undefined,
  );
  await g.start();
  kill.until = Math.min(kill.until, ctx.now());
  return `${old} killed, ${g.incarnation} started`;
}

function failoverLedger(title: string, setUp: (teardown: Teardown) => Promise<FailoverStack>): void {
  describe(title, { timeout: 600_000 }, () => {
    const teardown = new Teardown();
    const run = new LedgerRun({
      devices: DEVICES,
      clients: 6,
      paceMs: 30,
      maxRequests: 1500,
      slowMs: 400,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      queueTtlS: 8,
      runningGraceMs: RUNNING_GRACE_MS,
      clientTimeoutMs: REQUEST_TIMEOUT_MS + 5_000,
      retryWindowMs: 60_000,
      maxAttempts: 60,
      servedBetween: 30,
    });
    let stack: FailoverStack;
    let lb: HaproxyServer;
    let a: GatewayInstance;
    let b: GatewayInstance;
    let lbTarget: Target;
    /** When a gateway instance was SIGKILLed, and until HAProxy saw it DOWN or it was back (see nothing-lost.test.ts). */
    const gatewayKills: Array<{ at: number; until: number }> = [];
    let loaded = false;

    before(async () => {
      stack = await setUp(teardown);
      const logDir = await makeTempDir("nothing-lost-failover-logs-");
      teardown.add("log dir", () => removeDir(logDir));
      const prefix = `nlf-${randomBytes(3).toString("hex")}:`;
      const env =
        (name: "ga" | "gb") =>
        (incarnation: string): Env => ({
          ...stack.env[name],
          GATEWAY_INSTANCE_ID: incarnation,
          REDIS_KEY_PREFIX: prefix,
          GATEWAY_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
          GATEWAY_QUEUE_TTL_S: "8",
          GATEWAY_OFFLINE_RETRY_AFTER_S: "1",
          LOG_LEVEL: "info", // the port of a gateway on port 0 is read from its "listening" line
        });
      a = new GatewayInstance("ga", env("ga"), logDir);
      b = new GatewayInstance("gb", env("gb"), logDir);
      teardown.add("gateway processes", () => Promise.all([a.stop(), b.stop()]));
      await Promise.all([a.start(), b.start()]);
      await pollUntil("both instances ready", async () => (await a.readiness())?.status === 200 && (await b.readiness())?.status === 200, {
        timeoutMs: 60_000,
        intervalMs: 50,
      });
      await stack.startDevices((id) => run.book.handler(id));
      ({ lb, target: lbTarget } = await startLoadBalancer(teardown, [a, b], { [a.name]: "UP", [b.name]: "UP" }));
    });
    after(() => teardown.run());

    it(
      "answers every request exactly once, with its own reply or a catalogue error, through the faults",
      { timeout: 400_000 },
      async () => {
        await run.startLoad(lbTarget, [a.target, b.target]);
        loaded = true;
        const ctx: FaultContext = { a, b, lb, now: () => run.now(), gatewayKilled: (kill) => gatewayKills.push(kill) };
        try {
          for (const fault of stack.faults) await run.disrupt(fault.label, () => fault.inject(ctx));
        } finally {
          await run.stopLoad();
        }
        assertEveryRequestAnswered(run, gatewayKills);
      },
    );

    it("settles every accepted asynchronous request, the same on both instances", { timeout: 180_000 }, async () => {
      assert.ok(loaded, "the load ran");
      await assertAsyncSettled(run);
    });

    it("never actuates a keyed request twice, and every key answers its kept outcome again", { timeout: 200_000 }, async () => {
      assert.ok(loaded, "the load ran");
      await assertKeysActOnce(run);
      assertNoKeyStuck(run);
    });

    it("prints the figures", (t) => {
      assert.ok(loaded, "the load ran");
      const f = run.figures();
      console.log(f.lines.map((line) => `nothing-lost-failover | ${title.split(":")[0]} | ${line}`).join("\n"));
      t.diagnostic(`${run.load.done.length} requests, LOST ${f.lost}, DUPLICATES ${f.duplicates}, WRONG ${f.wrong}`);
    });
  });
}

/** Runs two start-ups at once; both are stopped by `teardown` even when the other failed. */
async function both<A extends { stop(): unknown }, B extends { stop(): unknown }>(
  teardown: Teardown,
  [nameA, startA]: [string, () => Promise<A>],
  [nameB, startB]: [string, () => Promise<B>],
): Promise<[A, B]> {
  const [x, y] = await Promise.allSettled([startA(), startB()]);
  if (x.status === "fulfilled") teardown.stopLater(nameA, x.value);
  if (y.status === "fulfilled") teardown.stopLater(nameB, y.value);
  if (x.status === "rejected") throw x.reason;
  if (y.status === "rejected") throw y.reason;
  return [x.value, y.value];
}

failoverLedger(
  "Sentinel and an ejabberd cluster: a gateway instance dies, the Redis primary dies and its replica is promoted, an ejabberd node dies",
  async (teardown) => {
    const [sentinel, cluster] = await both(
      teardown,
      ["redis sentinel", () => startRedisSentinel()],
      ["ejabberd cluster", () => startEjabberdCluster({ nodes: 2 })],
    );
    const [node1, node2] = cluster.nodes as [EjabberdServer, EjabberdServer];
    const env = (node: EjabberdServer): Env =>
      gatewayEnv(
        { redis: { url: "" }, prosody: node },
        { REDIS_URL: undefined, REDIS_SENTINELS: sentinel.sentinelList, REDIS_SENTINEL_NAME: sentinel.name },
      );
    return {
      env: { ga: env(node1), gb: env(node2) },
      async startDevices(handler) {
        const [onNode1, onNode2] = [DEVICES.slice(0, 4), DEVICES.slice(4)];
        teardown.stopLater(
          "devices on node 1",
          await startFleet(node1, onNode1, handler, { service: `${node1.service},${node2.service}` }),
        );
        teardown.stopLater(
          "devices on node 2",
          await startFleet(node2, onNode2, handler, { service: `${node2.service},${node1.service}` }),
        );
      },
      faults: [
        { label: "gateway SIGKILL", inject: (ctx) => killGateway(ctx.a, ctx) },
        {
          label: "redis primary SIGKILL, Sentinel promotes the replica",
          inject: async () => {
            const old = await sentinel.killPrimary();
            return `primary :${old} killed, :${await sentinel.waitForNewPrimary(old)} promoted`;
          },
        },
        {
          label: "ejabberd node 1 SIGKILL, with gateway A and half the devices on it",
          inject: async (ctx) => {
            await cluster.kill(node1);
            await pollUntil("gateway A to report XMPP lost", async () => (await ctx.a.readiness())?.checks.xmpp === false, {
              timeoutMs: 30_000,
              intervalMs: 20,
            });
            return "node 1 killed; gateway A unready (xmpp lost), the devices of node 1 log in to node 2";
          },
        },
      ],
    };
  },
);

failoverLedger("Redis Cluster: the primary holding a device's keys dies and its replica takes over", async (teardown) => {
  const [redis, ejabberd] = await both(teardown, ["redis cluster", () => startRedisCluster()], ["ejabberd", () => startEjabberd()]);
  const env = gatewayEnv({ redis: { url: "" }, prosody: ejabberd }, { REDIS_URL: undefined, REDIS_CLUSTER_NODES: redis.nodes });
  return {
    env: { ga: env, gb: env },
    async startDevices(handler) {
      teardown.stopLater("devices", await startFleet(ejabberd, DEVICES, handler));
    },
    faults: [
      {
        label: "redis cluster primary SIGKILL, its replica takes over",
        inject: async () => {
          // The primary of the first device's slot (its in-flight slots, Idempotency-Keys, registry entry).
          const key = new RedisKeys("").deviceSlots(DEVICES[0] as string);
          const old = await redis.killPrimaryOf(key);
          return `primary :${old} killed, :${await redis.waitForFailover(key, old)} took over`;
        },
      },
    ],
  };
});
