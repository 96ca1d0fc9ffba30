// The registry cache on a Redis Cluster (REDIS_CLUSTER_NODES), two instances wired as the gateway wires them
// (buildStores): the change channel is subscribed with SSUBSCRIBE on the shard owning its slot, each feed's
// check comes back by SPUBLISH and opens its cache, and a write through one instance drops the other's answer.
// The primary owning the channel then crashes: the caches close (every lookup reads Redis) until a replica
// has taken over and the subscriptions are back there, and changes are heard again.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { loadConfig } from "../../gateway/config.js";
import { createMetrics } from "../../gateway/metrics/metrics.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import { buildStores, type Stores } from "../../gateway/wiring/stores.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startRedisCluster, type ClusterDeployment } from "../../local-stack/redis-cluster.js";
import { FAILOVER_BOUND_MS, shardSubscribers } from "../helpers/redis-probes.js";
import { Teardown } from "../helpers/stack.js";

describe("the registry cache on a Redis Cluster", () => {
  const teardown = new Teardown();
  const prefix = `rcc-${randomBytes(3).toString("hex")}:`;
  let cluster: ClusterDeployment;
  let a: Stores;
  let b: Stores;
  let channel: string;

  const stores = async (instanceId: string): Promise<Stores> => {
    const config = loadConfig({
      XMPP_COMPONENT_SECRET: "x",
      REDIS_CLUSTER_NODES: cluster.nodes,
      REDIS_KEY_PREFIX: prefix,
      GATEWAY_INSTANCE_ID: instanceId,
      LOG_LEVEL: "silent",
    });
    const s = buildStores(config, pino({ level: "silent" }), createMetrics());
    await s.start();
    return teardown.stopLater(`stores ${instanceId}`, s);
  };
  const rec = (id: string, transport: DeviceRecord["transport"]): DeviceRecord =>
    transport === "http" ? { id, transport, httpTarget: "http://10.0.0.1:80" } : { id, transport };
  /** Until B's cache answers `id` with `transport` (its notice has arrived). */
  const seenByB = (id: string, transport: string | undefined) =>
    pollUntil(`B to answer ${id} with ${transport}`, async () => (await b.registryCache.get(id))?.transport === transport, {
      intervalMs: 5,
      timeoutMs: FAILOVER_BOUND_MS,
    });

  before(async () => {
    cluster = teardown.stopLater("cluster", await startRedisCluster());
    a = await stores("a");
    b = await stores("b");
    channel = a.redis.keys.registryChanges();
    await pollUntil("both caches open (their checks came back by SPUBLISH)", () => a.registryCache.isOpen && b.registryCache.isOpen);
  });
  after(() => teardown.run());

  it("subscribes the channel on the shard owning it; a write through A drops B's answer", async () => {
    assert.equal(await shardSubscribers(await cluster.primaryOf(channel), channel), 2, "A's and B's sharded subscribers");
    await a.registry.put(rec("clu-1", "xmpp"));
    await seenByB("clu-1", "xmpp");
    await a.registry.put(rec("clu-1", "http"));
    await seenByB("clu-1", "http");
  });

  it("the listing's ordered ids and their records, read across slots: written by A, paged by B", async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `clu-p${String(i).padStart(2, "0")}`);
    await Promise.all(ids.map((id) => a.registry.put(rec(id, "xmpp"))));
    await a.registry.delete("clu-p07");
    const expected = ids.filter((id) => id !== "clu-p07");
    assert.deepEqual(await b.registry.idsIn({ prefix: "clu-p" }, 100), expected);
    assert.deepEqual(await b.registry.idsIn({ prefix: "clu-p", after: "clu-p05" }, 2), ["clu-p06", "clu-p08"]);
    assert.equal(await b.registry.countIn({ prefix: "clu-p", after: "clu-p29" }), 10);
    assert.deepEqual(
      (await b.registry.getMany(expected)).map((r) => r?.id),
      expected,
    );
    assert.equal(await b.registry.indexIds(), 0, "the id set and the ordered ids agree");
  });

  it("the primary owning the channel crashes: the caches close, and open again once the subscriptions are back", async () => {
    const oldPrimary = await cluster.primaryOf(channel);
    await cluster.killPrimaryOf(channel);
    await pollUntil("B's cache closed", () => !b.registryCache.isOpen, { intervalMs: 5 });
    const promoted = await cluster.waitForFailover(channel, oldPrimary, FAILOVER_BOUND_MS);
    await pollUntil("both caches open again", () => a.registryCache.isOpen && b.registryCache.isOpen, { timeoutMs: FAILOVER_BOUND_MS });
    assert.equal(await shardSubscribers(promoted, channel), 2, "subscribed on the promoted replica");
    await b.registryCache.get("clu-2");
    await pollUntil("A's write made (the Cluster may still be settling)", async () => {
      await a.registry.put(rec("clu-2", "http"));
      return true;
    });
    await seenByB("clu-2", "http");
  });
});
