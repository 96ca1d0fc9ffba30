// migrate-keys on the targets the gateway's own environment can name beyond one node: from one Redis node (the
// release before hash tags ran on one node or Sentinel) onto a Redis Cluster (REDIS_CLUSTER_NODES), where the
// keys land in the slots of their tags and this release's stores serve them (their scripts refuse keys of two
// slots); and in place on Redis Sentinel (REDIS_SENTINELS), through the primary the Sentinels name.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { startRedisCluster, type ClusterDeployment } from "../../local-stack/redis-cluster.js";
import { startRedisSentinel, type SentinelDeployment } from "../../local-stack/redis-sentinel.js";
import { loadConfig } from "../../gateway/config.js";
import { RedisStore, type RedisOptions } from "../../gateway/redis/client.js";
import { runMigration } from "../../gateway/migrate/run.js";
import type { FamilyCounts } from "../../gateway/migrate/migrate.js";
import { assertMovedDataServes, writeOldLayout } from "../helpers/old-redis-layout.js";

const logger = pino({ level: "silent" });

describe("migrate-keys: one node → Redis Cluster", () => {
  let source: RedisServer;
  let cluster: ClusterDeployment;
  let sourceStore: RedisStore;
  let store: RedisStore;
  let target: RedisOptions;

  const migrate = async (from: string | undefined, deleteOld = false) => {
    const lines: string[] = [];
    const result = await runMigration({ ...(from !== undefined ? { from } : {}), deleteOld, dryRun: false, scanCount: 5 }, target, {
      logger,
      print: (line) => lines.push(line),
      printError: (line) => lines.push(line),
    });
    const moved = Object.fromEntries(
      (result.report?.families ?? []).flatMap((f): Array<[string, FamilyCounts]> => (f.counts.moved > 0 ? [[f.family, f.counts]] : [])),
    );
    return { ...result, lines, moved: Object.fromEntries(Object.entries(moved).map(([k, c]) => [k, c.moved])) };
  };

  before(async () => {
    const [s, c] = await Promise.allSettled([startRedis(), startRedisCluster()]);
    if (s.status === "fulfilled") source = s.value;
    if (c.status === "fulfilled") cluster = c.value;
    if (s.status === "rejected") throw s.reason;
    if (c.status === "rejected") throw c.reason;
    target = loadConfig({ REDIS_CLUSTER_NODES: cluster.nodes, REDIS_KEY_PREFIX: "gw:", XMPP_COMPONENT_SECRET: "unused" }).redis;
    sourceStore = new RedisStore({ url: source.url, keyPrefix: "gw:", commandTimeoutMs: 2000 }, { logger });
    store = new RedisStore(target, { logger });
    await Promise.all([sourceStore.start(), store.start()]);
    await writeOldLayout(sourceStore.client as never, "gw:");
  });
  after(async () => {
    await Promise.allSettled([sourceStore?.stop(), store?.stop()]);
    await Promise.allSettled([source?.stop(), cluster?.stop()]);
  });

  it("a Cluster target needs --from", async () => {
    const run = await migrate(undefined);
    assert.equal(run.exitCode, 2);
    assert.match(run.lines.join("\n"), /give --from/);
  });

  it("copies every persistent key onto the Cluster, where this release's stores serve them", async () => {
    const run = await migrate(source.url);
    assert.equal(run.exitCode, 0, run.lines.join("\n"));
    assert.deepEqual(run.moved, {
      device: 3,
      devices: 1,
      legacy: 1,
      idem: 1,
      queue: 2,
      queuebytes: 2,
      queued: 1,
      queuedbytes: 1,
      request: 1,
      shadow: 1,
    });
    const slots = await Promise.all(
      [store.keys.offlineQueue("dev-2@devices.example.com/agent"), "{dev-2@devices.example.com/agent}"].map((k) => cluster.slotOf(k)),
    );
    assert.equal(slots[0], slots[1], "a moved key is in its tag's slot");
    const again = await migrate(source.url);
    assert.equal(again.exitCode, 0);
    assert.deepEqual(again.moved, {}, "a second run moves nothing");
    await assertMovedDataServes(store);
  });

  it("--delete-old empties the source of the old names", async () => {
    const run = await migrate(source.url, true);
    assert.equal(run.exitCode, 0, run.lines.join("\n"));
    const left = (await sourceStore.run((c) => c.keys("*"))).sort();
    assert.deepEqual(
      left.filter((k) => !/^gw:(corr|seen|inflight):/.test(k)),
      ["gw:queue:{x@devices.example.com/y}", "gw:queuebytes:{x@devices.example.com/y}"],
      "only short-lived keys, and what reads as the new layout, stay on the source",
    );
  });
});

describe("migrate-keys: in place on Redis Sentinel", () => {
  let sentinel: SentinelDeployment;
  let store: RedisStore;
  let target: RedisOptions;

  before(async () => {
    sentinel = await startRedisSentinel();
    target = loadConfig({
      REDIS_SENTINELS: sentinel.sentinelList,
      REDIS_SENTINEL_NAME: sentinel.name,
      REDIS_KEY_PREFIX: "gw:",
      XMPP_COMPONENT_SECRET: "unused",
    }).redis;
    store = new RedisStore(target, { logger });
    await store.start();
    await writeOldLayout(store.client as never, "gw:");
  });
  after(async () => {
    await store?.stop();
    await sentinel?.stop();
  });

  it("moves the keys on the primary, and this release's stores serve them", async () => {
    const lines: string[] = [];
    const result = await runMigration({ deleteOld: true, dryRun: false, scanCount: 5 }, target, {
      logger,
      print: (line) => lines.push(line),
      printError: (line) => lines.push(line),
    });
    assert.equal(result.exitCode, 0, lines.join("\n"));
    assert.ok(
      lines.some((l) => l.endsWith(", in place, deleting the old keys")),
      lines.join("\n"),
    );
    const moved = Object.fromEntries(
      (result.report?.families ?? []).filter((f) => f.counts.moved > 0).map((f) => [f.family, f.counts.moved]),
    );
    assert.deepEqual(moved, { device: 3, legacy: 1, idem: 1, queue: 2, queuebytes: 2, queued: 1, queuedbytes: 1 });
    await assertMovedDataServes(store);
  });
});
