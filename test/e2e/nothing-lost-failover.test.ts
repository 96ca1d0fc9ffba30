// Nothing is lost across failovers (README, "Redis Sentinel" and "ejabberd cluster"): the mixed load of
// nothing-lost.test.ts (every method, some `Prefer: respond-async`, some keyed, some keys replayed) goes through
// HAProxy to two gateway processes on a two-node ejabberd cluster, gateway A attached to node 1 and gateway B to
// node 2 on one component domain, half the devices on each node (each agent given both nodes, its own first),
// with Redis behind Sentinel; then, one after the other:
//   - one gateway instance is SIGKILLed (and started again);
//   - the Redis primary is SIGKILLed and the Sentinels promote its replica (the gateways follow by themselves);
//   - ejabberd node 1 is SIGKILLed with gateway A and half the devices attached: the devices move to node 2,
//     gateway A goes unready (it is given node 1 only) and HAProxy sends everything to gateway B.
// The same ledger as nothing-lost.test.ts is checked and printed (test/helpers/ledger/run.ts), with the time to
// recover from each fault: every request exactly one answer, no key acting twice, every async request settled.
//
// Asynchronous replication (README, "Redis Sentinel"): a write acknowledged by the primary and not yet copied to
// the replica is lost with it. On loopback the replica is microseconds behind, so this run cannot show such a
// loss; `npm run bench` measures it (and what WAIT costs).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { RUNNING_GRACE_MS } from "../../gateway/delivery/idempotency.js";
import type { Env } from "../../lib/env.js";
import type { EjabberdServer } from "../../local-stack/ejabberd.js";
import { startEjabberdCluster, type EjabberdCluster } from "../../local-stack/ejabberd-cluster.js";
import { startHaproxy, type HaproxyServer } from "../../local-stack/haproxy.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startRedisSentinel, type SentinelDeployment } from "../../local-stack/redis-sentinel.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { startFleet } from "../helpers/fleet.js";
import { gatewayEnv } from "../helpers/gateway.js";
import type { Target } from "../helpers/ledger/client.js";
import { GatewayInstance } from "../helpers/ledger/gateway-instance.js";
import { LedgerRun } from "../helpers/ledger/run.js";
import { Teardown } from "../helpers/stack.js";

const DEVICES = Array.from({ length: 8 }, (_, i) => `fo-dev${i}`);
const ON_NODE_1 = DEVICES.slice(0, 4);
const ON_NODE_2 = DEVICES.slice(4);
const REQUEST_TIMEOUT_MS = 5_000;

describe(
  "nothing lost across failovers: a gateway instance dies, Redis Sentinel promotes the replica, an ejabberd node dies",
  { timeout: 600_000 },
  () => {
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
      servedBetween: 60,
    });
    const now = (): number => run.now();
    let sentinel: SentinelDeployment;
    let cluster: EjabberdCluster;
    let node1: EjabberdServer;
    let node2: EjabberdServer;
    let lb: HaproxyServer;
    let a: GatewayInstance;
    let b: GatewayInstance;
    const lbAgent = new http.Agent({ keepAlive: true, maxSockets: 12 });
    let lbTarget: Target;
    /** When a gateway instance was SIGKILLed, and until HAProxy saw it DOWN or it was back (see nothing-lost.test.ts). */
    const gatewayKills: Array<{ at: number; until: number }> = [];
    let loaded = false;

    before(async () => {
      const [s, e] = await Promise.allSettled([startRedisSentinel(), startEjabberdCluster({ nodes: 2 })]);
      if (s.status === "fulfilled") sentinel = teardown.stopLater("redis sentinel", s.value);
      if (e.status === "fulfilled") cluster = teardown.stopLater("ejabberd cluster", e.value);
      if (s.status === "rejected") throw s.reason;
      if (e.status === "rejected") throw e.reason;
      [node1, node2] = cluster.nodes as [EjabberdServer, EjabberdServer];

      const logDir = await makeTempDir("nothing-lost-failover-logs-");
      teardown.add("log dir", () => removeDir(logDir));
      const prefix = `nlf-${randomBytes(3).toString("hex")}:`;
      const env =
        (node: EjabberdServer) =>
        (incarnation: string): Env =>
          gatewayEnv(
            { redis: { url: "" }, prosody: node },
            {
              REDIS_URL: undefined,
              REDIS_SENTINELS: sentinel.sentinelList,
              REDIS_SENTINEL_NAME: sentinel.name,
              GATEWAY_INSTANCE_ID: incarnation,
              REDIS_KEY_PREFIX: prefix,
              GATEWAY_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
              GATEWAY_QUEUE_TTL_S: "8",
              GATEWAY_OFFLINE_RETRY_AFTER_S: "1",
              GATEWAY_DRAIN_GRACE_MS: "0",
              GATEWAY_DRAIN_TIMEOUT_MS: "2000",
              LOG_LEVEL: "info", // the port of a gateway on port 0 is read from its "listening" line
            },
          );
      a = new GatewayInstance("ga", env(node1), logDir);
      b = new GatewayInstance("gb", env(node2), logDir);
      teardown.add("gateway processes", () => Promise.all([a.stop(), b.stop()]));
      await Promise.all([a.start(), b.start()]);
      await pollUntil("both instances ready", async () => (await a.readiness())?.status === 200 && (await b.readiness())?.status === 200, {
        timeoutMs: 60_000,
        intervalMs: 50,
      });
      const handler = (id: string) => run.book.handler(id);
      teardown.stopLater(
        "devices on node 1",
        await startFleet(node1, ON_NODE_1, handler, { service: `${node1.service},${node2.service}` }),
      );
      teardown.stopLater(
        "devices on node 2",
        await startFleet(node2, ON_NODE_2, handler, { service: `${node2.service},${node1.service}` }),
      );
      lb = teardown.stopLater(
        "haproxy",
        await startHaproxy([
          { name: a.name, port: a.port },
          { name: b.name, port: b.port },
        ]),
      );
      teardown.add("client sockets", () => lbAgent.destroy());
      lbTarget = { name: "lb", port: lb.port, agent: lbAgent };
      await pollUntil(
        "both instances UP in HAProxy",
        async () => {
          const states = await lb.serverStates();
          return states[a.name] === "UP" && states[b.name] === "UP";
        },
        { timeoutMs: 30_000 },
      );
    });
    after(() => teardown.run());

    it(
      "answers every request exactly once, with its own reply or a catalogue error, through the failovers",
      { timeout: 400_000 },
      async () => {
        await run.startLoad(lbTarget, [a.target, b.target]);
        loaded = true;
        try {
          await run.disrupt("gateway SIGKILL", async () => {
            const old = a.incarnation;
            const kill = { at: now(), until: Infinity };
            gatewayKills.push(kill);
            await a.kill();
            void pollUntil(`${old} DOWN in HAProxy`, async () => (await lb.serverStates())[a.name] === "DOWN", {
              timeoutMs: 60_000,
              intervalMs: 20,
            }).then(
              () => (kill.until = Math.min(kill.until, now())),
              () => undefined,
            );
            await a.start();
            kill.until = Math.min(kill.until, now());
            return `${old} killed, ${a.incarnation} started`;
          });

          await run.disrupt("redis primary SIGKILL, Sentinel promotes the replica", async () => {
            const old = await sentinel.killPrimary();
            const promoted = await sentinel.waitForNewPrimary(old);
            return `primary :${old} killed, :${promoted} promoted`;
          });

          await run.disrupt("ejabberd node 1 SIGKILL, with gateway A and half the devices on it", async () => {
            await cluster.kill(node1);
            await pollUntil("gateway A to report XMPP lost", async () => (await a.readiness())?.checks.xmpp === false, {
              timeoutMs: 30_000,
              intervalMs: 20,
            });
            return "node 1 killed; gateway A unready (xmpp lost), the devices of node 1 log in to node 2";
          });
        } finally {
          await run.stopLoad();
        }
        assert.deepEqual(
          run.wrongAnswers().slice(0, 20),
          [],
          "requests that got an answer that is neither their own reply nor a catalogue error",
        );
        assert.deepEqual(run.unanswered().slice(0, 20), [], "requests that got no answer at all after the client's retries: lost");
        assert.deepEqual(run.resetsOutside(gatewayKills).slice(0, 20), [], "connections lost with no instance down");
      },
    );

    it("settles every accepted asynchronous request, the same on both instances", { timeout: 180_000 }, async () => {
      assert.ok(loaded, "the load ran");
      await run.settleAsync();
      const v = run.asyncViolations();
      assert.deepEqual([...v.lost, ...v.wrong, ...v.differ].slice(0, 20), [], "asynchronous requests lost, wrong, or read differently");
    });

    it("never actuates a keyed request twice, and every key answers its kept outcome again", { timeout: 200_000 }, async () => {
      assert.ok(loaded, "the load ran");
      assert.deepEqual(run.duplicates(), [], "requests that reached their device twice");
      assert.deepEqual(run.replaysDiffering().slice(0, 20), [], "a replay with the same key returns the kept outcome");
      await run.resendKeys();
      assert.deepEqual(run.duplicates(), [], "sending a key again after the faults must not reach the device again");
      const k = run.keyViolations();
      assert.deepEqual([...k.wrong, ...k.differ, ...k.stuck].slice(0, 20), [], "keys sent again: wrong, different, or still 409");
    });

    it("prints the figures", (t) => {
      assert.ok(loaded, "the load ran");
      const f = run.figures();
      console.log(f.lines.map((line) => `nothing-lost-failover | ${line}`).join("\n"));
      t.diagnostic(`nothing-lost-failover: ${run.load.done.length} requests, LOST ${f.lost}, DUPLICATES ${f.duplicates}, WRONG ${f.wrong}`);
    });
  },
);
