// Gateways on a Redis Cluster (REDIS_CLUSTER_NODES, REDIS_CLUSTER_TLS, an ACL user; README, "Redis Cluster"):
// three primaries with a replica each, reached over TLS only. The instances connect and are ready, their reply
// channels are subscribed with SSUBSCRIBE on the shard owning each channel's slot and reached by SPUBLISH; the
// primary holding one instance's reply channel crashes, its replica takes over, and that instance's
// subscriptions come back on the new primary by themselves. Requests answer before and after, their Lua
// scripts each touching one hash slot (keys.ts), and a reply reaching the instance that does not own its
// exchange is forwarded to the owner by SPUBLISH.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { createLogger } from "../../gateway/log.js";
import { RedisStore } from "../../gateway/redis/client.js";
import { pollUntil } from "../../local-stack/ports.js";
import { redisCommand } from "../../local-stack/redis.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { issueServerCertificate, makeCertificateAuthority } from "../helpers/certificates.js";
import { startProsody, type ComponentSpec, type ProsodyServer } from "../../local-stack/prosody.js";
import { startRedisCluster, type ClusterDeployment } from "../../local-stack/redis-cluster.js";
import { echoDevice } from "../helpers/echo-device.js";
import { commandCounts, FAILOVER_BOUND_MS, serveEveryDevice, shardSubscribers } from "../helpers/redis-probes.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { Teardown } from "../helpers/stack.js";

const DEVICES = ["clu-0", "clu-1", "clu-2", "clu-3"];
/** B's domain; a later instance on it takes it over (Prosody's kick_old), so B's replies reach that one. */
const TAKEN_OVER: ComponentSpec = { domain: "gateway.localhost", secret: "test-secret", conflictResolve: "kick_old" };
/** A's domain, its own for the whole file (the devices take requests from B's domain only: A publishes, B serves). */
const SECOND: ComponentSpec = { domain: "gateway-2.localhost", secret: "second-secret" };
/** Every node has this ACL user, and the gateways authenticate as it (REDIS_USERNAME, REDIS_PASSWORD). */
const ACL_USER = { name: "gateway", password: "cluster-acl-secret-5e1" };

describe("gateways on a Redis Cluster: sharded pub/sub, and a failover of a primary", () => {
  const teardown = new Teardown();
  const prefix = `clu-${randomBytes(3).toString("hex")}:`;
  let cluster: ClusterDeployment;
  let caFile: string;
  let prosody: ProsodyServer;
  let a: RunningGateway;
  let b: RunningGateway;
  /** Requests to `/hold…` wait here until released. */
  const held: Array<{ path: string; res: ServerResponse }> = [];

  const start = (component: ComponentSpec, instanceId: string): Promise<RunningGateway> =>
    startGateway(
      { redis: { url: "" }, prosody: { ...prosody, components: [component] } },
      {
        REDIS_URL: undefined,
        REDIS_CLUSTER_NODES: cluster.nodes,
        REDIS_CLUSTER_TLS: "on",
        REDIS_TLS_CA_FILE: caFile,
        REDIS_USERNAME: ACL_USER.name,
        REDIS_PASSWORD: ACL_USER.password,
        REDIS_KEY_PREFIX: prefix,
        GATEWAY_INSTANCE_ID: instanceId,
      },
    );

  before(async () => {
    const dir = await makeTempDir("redis-cluster-tls-");
    teardown.stopLater("certificates", { stop: () => removeDir(dir) });
    const ca = await makeCertificateAuthority(dir, "ca");
    caFile = ca.certFile;
    // The nodes also use it as a client certificate, to each other over the TLS cluster bus.
    const cert = await issueServerCertificate(ca, dir, "redis", { dns: ["localhost"], ip: ["127.0.0.1"] }, { clientAuth: true });
    const tls = { certFile: cert.certFile, keyFile: cert.keyFile, caFile };
    const [c, p] = await Promise.allSettled([
      startRedisCluster({ aclUser: ACL_USER, tls }),
      startProsody({ components: [TAKEN_OVER, SECOND] }),
    ]);
    if (c.status === "fulfilled") cluster = teardown.stopLater("redis cluster", c.value);
    if (p.status === "fulfilled") prosody = teardown.stopLater("prosody", p.value);
    if (c.status === "rejected") throw c.reason;
    if (p.status === "rejected") throw p.reason;
    a = teardown.stopLater("gateway A", await start(SECOND, "clu-a"));
    b = teardown.stopLater("gateway B", await start(TAKEN_OVER, "clu-b"));
    teardown.stopLater(
      "fleet",
      await startFleet(prosody, DEVICES, (id) => {
        const echo = echoDevice(id);
        return (req: IncomingMessage, res: ServerResponse) => {
          if (!req.url?.startsWith("/hold")) return echo(req, res);
          req.resume();
          held.push({ path: req.url, res });
        };
      }),
    );
  });
  after(() => teardown.run());

  async function ready(gw: RunningGateway): Promise<{ status: number; redis: boolean | undefined }> {
    const res = await fetch(`${gw.url}/readyz`, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { checks: Record<string, boolean> };
    return { status: res.status, redis: body.checks.redis };
  }

  it("connects in Cluster mode: ready, each reply channel sharded-subscribed on the primary owning its slot, reached by SPUBLISH", async () => {
    assert.deepEqual([a.config.redis.cluster?.nodes.length, a.config.redis.cluster?.tls], [6, true]);
    assert.equal(a.gateway.redis.publishCommand, "SPUBLISH");
    for (const gw of [a, b]) {
      assert.deepEqual(await ready(gw), { status: 200, redis: true });
      const channel = gw.gateway.redis.keys.replyChannel(gw.config.instanceId);
      const owner = await cluster.primaryOf(channel);
      await pollUntil(`${gw.config.instanceId}'s reply channel to be subscribed on 127.0.0.1:${owner}`, async () => {
        return (await shardSubscribers(owner, channel)) === 1;
      });
    }
    // The sharded subscribers (connections of their own, one per primary) authenticate as the ACL user too.
    const owner = await cluster.primaryOf(a.gateway.redis.keys.replyChannel("clu-a"));
    const clients = (await redisCommand(owner, ["CLIENT", "LIST"])).split("\n");
    const subscribers = clients.filter((line) => line.includes(" cmd=ssubscribe"));
    assert.ok(subscribers.length > 0, `a sharded subscriber on 127.0.0.1:${owner}`);
    assert.deepEqual(
      subscribers.filter((line) => !line.includes(` user=${ACL_USER.name} `)),
      [],
      "every sharded subscriber is the ACL user",
    );
    // Each instance names its connections after itself, so an operator can tell them apart in CLIENT LIST.
    assert.ok(
      subscribers.some((line) => / name=\S*gateway:clu-a /.test(line)),
      `clu-a's sharded subscriber is named after gateway:clu-a (ioredis prefixes it): ${subscribers.join(" | ")}`,
    );
    const departures = a.gateway.redis.keys.departures();
    const departuresOwner = await cluster.primaryOf(departures);
    await pollUntil("both instances to listen for departures", async () => (await shardSubscribers(departuresOwner, departures)) === 2);
    // SPUBLISH counts the subscribers of the shard it reached: B's reply bus (which ignores what is not a stanza).
    assert.equal(await a.gateway.redis.publish(b.gateway.redis.keys.replyChannel("clu-b"), "not a stanza"), 1);
  });

  it("requests answer; each gives its device's in-flight slot back with a sharded notice (SPUBLISH from the release script)", async () => {
    const spublished = async (): Promise<number> =>
      (await Promise.all(cluster.ports.map((port) => commandCounts(port)))).reduce((sum, c) => sum + c.spublish, 0);
    const before = await spublished();
    await serveEveryDevice(b.url, DEVICES, "cluster");
    // A classic PUBLISH would reach no SSUBSCRIBE listener: waiters would only retry at the slot's deadline.
    await pollUntil("a freed-slot notice per request", async () => (await spublished()) - before >= DEVICES.length, { timeoutMs: 10_000 });
  });

  it("the primary holding B's reply channel crashes: a replica takes over and B's subscriptions come back on it", async (t) => {
    const channel = b.gateway.redis.keys.replyChannel("clu-b");
    // A second listener on B's reply channel, through B's RedisStore, sees what A publishes there.
    const probe = b.gateway.redis.subscriber(createLogger("silent"));
    teardown.stopLater("probe subscriber", probe);
    await probe.start();
    const received: string[] = [];
    await probe.listen(channel, (message) => received.push(message)).ready;
    const oldPrimary = await cluster.primaryOf(channel);
    await pollUntil("B's reply bus and the probe to be subscribed", async () => (await shardSubscribers(oldPrimary, channel)) === 2);
    assert.equal(await a.gateway.redis.publish(channel, "before"), 2);
    await pollUntil("the probe to receive what A published", () => received.includes("before"));

    // Every node's counts before the crash (replication applies the scripts' effects, not EVAL).
    const before = new Map(await Promise.all(cluster.ports.map(async (port) => [port, await commandCounts(port)] as const)));
    const crashedAt = Date.now();
    assert.equal(await cluster.killPrimaryOf(channel), oldPrimary);
    const promoted = await cluster.waitForFailover(channel, oldPrimary, FAILOVER_BOUND_MS);
    const promotedAt = Date.now();
    await pollUntil(
      `B's reply bus and the probe to be subscribed again on the promoted replica 127.0.0.1:${promoted}`,
      async () => (await shardSubscribers(promoted, channel)) === 2,
      { timeoutMs: FAILOVER_BOUND_MS, intervalMs: 50 },
    );
    // A's own connections follow the new topology too: its SPUBLISH reaches both subscribers again.
    let n = 0;
    await pollUntil(
      "a message published by A after the failover to reach the probe",
      async () => {
        const message = `after-${n++}`;
        const receivers = await a.gateway.redis.publish(channel, message).catch(() => 0);
        return receivers === 2 && (await pollUntil("delivery", () => received.includes(message), { timeoutMs: 2_000 }).catch(() => false));
      },
      { timeoutMs: FAILOVER_BOUND_MS, intervalMs: 100 },
    );
    const recoveredAt = Date.now();
    console.log(
      `[redis-cluster] primary 127.0.0.1:${oldPrimary} crashed → replica 127.0.0.1:${promoted} promoted after ` +
        `${promotedAt - crashedAt} ms; B's subscriptions back and reached by A's SPUBLISH ${recoveredAt - crashedAt} ms after the crash`,
    );
    assert.deepEqual(await ready(a), { status: 200, redis: true });
    assert.deepEqual(await ready(b), { status: 200, redis: true });

    await t.test("requests answer again", async () => {
      // B's connections learn the new topology when a command of theirs meets it: its first request to a slot
      // of the crashed primary may still fail (503 GW_STORE_UNAVAILABLE) before ioredis moves the slot.
      let attempts = 0;
      await pollUntil(
        "every device served through B",
        async () => {
          attempts++;
          await serveEveryDevice(b.url, DEVICES, "cluster");
          return true;
        },
        { timeoutMs: FAILOVER_BOUND_MS, intervalMs: 100 },
      );
      console.log(`[redis-cluster] every device served through B at attempt ${attempts}`);
      console.log(`[redis-cluster] requests served again ${Date.now() - crashedAt} ms after the crash`);
      // Scripts are not replicated: each instance's new connection to the promoted replica sends a script by
      // EVAL once (ioredis tracks it per socket) and by EVALSHA after that, as after a Sentinel failover.
      const scripts = Object.keys((b.gateway.redis.client as unknown as { scriptsSet: Record<string, unknown> }).scriptsSet).length;
      const now = await commandCounts(promoted);
      const then = before.get(promoted) ?? { eval: 0, evalsha: 0, noscript: 0 };
      const [evals, evalshas, noscripts] = [now.eval - then.eval, now.evalsha - then.evalsha, now.noscript - then.noscript];
      console.log(
        `[redis-cluster] on the promoted replica: ${evals} EVAL, ${evalshas} EVALSHA, ${noscripts} NOSCRIPT (${scripts} scripts)`,
      );
      assert.ok(evals <= 2 * scripts, `at most one EVAL per script and instance: ${evals} EVAL for ${scripts} scripts`);
      assert.ok(noscripts <= 2 * scripts, `at most one NOSCRIPT per script and instance: ${noscripts}`);
    });
  });

  it("a reply reaching the instance that does not own its exchange is forwarded to the owner by SPUBLISH (after the failover)", async () => {
    const settled: string[] = [];
    const inFlight = ["/hold-one", "/hold-two"].map((path) =>
      fetch(`${b.url}/devices/clu-0${path}`, { signal: AbortSignal.timeout(30_000) }).then(async (res) => {
        settled.push(path);
        return { status: res.status, text: await res.text() };
      }),
    );
    // A request that fails before reaching the device (a script refused) ends the wait at once.
    await pollUntil("the device to hold both requests", () => held.length === 2 || settled.length > 0, { timeoutMs: 10_000 });
    if (settled.length > 0) assert.fail(`answered before the device did: ${JSON.stringify(await Promise.all(inFlight))}`);

    // C takes B's component domain over: the device's replies now reach C, which forwards them to B.
    const c = teardown.stopLater("gateway C", await start(TAKEN_OVER, "clu-c"));
    await pollUntil("B to be replaced on its domain", () => !b.gateway.component.online, { timeoutMs: 10_000 });
    for (const { path, res } of held.splice(0)) res.end(`reply to ${path}`);
    assert.deepEqual(await Promise.all(inFlight), [
      { status: 200, text: "reply to /hold-one" },
      { status: 200, text: "reply to /hold-two" },
    ]);
    const forwarded = (await c.gateway.metrics.repliesForwarded.get()).values;
    assert.equal(forwarded.find((v) => v.labels.kind === "iq")?.value, 2, "C forwarded both replies");
  });

  it("a stopped store leaves no connection open on any node, its sharded subscribers' included", async () => {
    // By name: the gateways' own connections come and go as ioredis refreshes its view of the Cluster.
    const name = `probe-store-${randomBytes(3).toString("hex")}`;
    /** Connections of the probe store on every node still running (CLIENT LIST). */
    const connections = async (): Promise<number> => {
      const lists = await Promise.all(cluster.ports.map((port) => redisCommand(port, ["CLIENT", "LIST"]).catch(() => "")));
      return lists.flatMap((list) => list.split("\n")).filter((line) => line.includes(` name=${name} `)).length;
    };
    const store = new RedisStore({ ...a.config.redis, connectionName: name }, { logger: createLogger("silent") });
    const subscriber = store.subscriber(createLogger("silent"));
    await store.start();
    await subscriber.start();
    await subscriber.listen(`${prefix}probe`, () => undefined).ready;
    assert.equal(await store.publish(`${prefix}probe`, "x"), 1);
    assert.ok((await connections()) >= 2, "the store and its subscriber are connected, under the name given");
    await subscriber.stop();
    await store.stop();
    await pollUntil("every connection of the stopped store to close", async () => (await connections()) === 0, { timeoutMs: 10_000 });
  });

  it("a wrong password leaves the store unready (every node refuses it), and says why in the log", async () => {
    const lines: string[] = [];
    const store = new RedisStore(
      { ...a.config.redis, password: "wrong-password-0" },
      { logger: pino({ level: "warn" }, { write: (line: string) => lines.push(line) }) },
    );
    try {
      await store.start();
      assert.equal(store.ready, false);
      await pollUntil("the refusal in the log", () => lines.some((line) => /WRONGPASS|startup nodes/.test(line)));
      assert.ok(!lines.join("").includes("wrong-password-0"), "the password is not logged");
    } finally {
      await store.stop();
    }
  });
});
