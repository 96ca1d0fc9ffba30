// The registry cache against a real Redis and its pub/sub, as two gateway instances use it (each its own
// RedisStore, registry, cache and change feed, one key space): a hit sends no command; a change made through
// either instance is seen by the other once its notice arrives, a created entry as well as a changed one; a
// read under way when the notice comes is not kept; while the feed may miss notices (its subscription lost,
// Redis gone) every lookup reads Redis, and the cache comes back empty; a change made behind the gateway's
// back is read within GATEWAY_REGISTRY_CACHE_MS; 0 is no cache at all. The wiring (buildStores) last.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { pino, type Logger } from "pino";
import { loadConfig } from "../../gateway/config.js";
import { isGatewayError } from "../../gateway/errors.js";
import { createMetrics } from "../../gateway/metrics/metrics.js";
import { RedisStore } from "../../gateway/redis/client.js";
import { CachedRegistry } from "../../gateway/registry/cached-registry.js";
import type { DeviceRecord, DeviceRegistry } from "../../gateway/registry/device.js";
import { RedisDeviceRegistry } from "../../gateway/registry/redis-registry.js";
import { RegistryChangeFeed } from "../../gateway/registry/registry-changes.js";
import { buildStores } from "../../gateway/wiring/stores.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";

let server: RedisServer;
/** A client of the test's own, for INFO and for writes behind the gateway's back. */
let probe: Redis;
const started: Array<{ stop(): Promise<void> }> = [];

before(async () => {
  server = await startRedis();
  probe = new Redis(server.port, "127.0.0.1", { maxRetriesPerRequest: 0, lazyConnect: true });
  probe.on("error", () => undefined); // while the server is down
  await probe.connect();
});
after(async () => {
  for (const s of started.reverse()) await s.stop();
  probe.disconnect();
  await server.stop();
});

/** GETs the server has run so far (INFO commandstats): a hit must add none. */
async function gets(): Promise<number> {
  const stats = await probe.info("commandstats");
  return Number(/^cmdstat_get:calls=(\d+)/m.exec(stats)?.[1] ?? 0);
}

/** The feed's log events, to wait on: it says when the cache opens and closes. */
class EventLog {
  private readonly waiters: Array<{ event: string; resolve: () => void }> = [];
  readonly logger: Logger = pino({ level: "info" }, { write: (line: string) => this.seen(line) });

  next(event: string): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ event, resolve }));
  }

  private seen(line: string): void {
    const { event } = JSON.parse(line) as { event?: string };
    for (const [i, w] of [...this.waiters.entries()].reverse()) {
      if (w.event !== event) continue;
      this.waiters.splice(i, 1);
      w.resolve();
    }
  }
}

interface Instance {
  store: RedisStore;
  registry: RedisDeviceRegistry;
  cache: CachedRegistry;
  feed: RegistryChangeFeed;
  log: EventLog;
  /** Resolves at the next change notice this instance receives. */
  nextNotice(): Promise<void>;
  /** Resolves once the cache is open (at once if it is). */
  open(): Promise<void>;
}

/**
 * One instance as wiring/stores.ts builds it, in key space `prefix`. `wrap` puts something between the cache
 * and the registry (a read the test holds back); `now` is the cache's clock.
 */
async function instance(
  prefix: string,
  opts: { maxAgeMs?: number; now?: () => number; wrap?: (r: RedisDeviceRegistry) => Pick<DeviceRegistry, "get"> } = {},
): Promise<Instance> {
  const log = new EventLog();
  const store = new RedisStore({ url: server.url, keyPrefix: prefix, commandTimeoutMs: 1000 }, { logger: pino({ level: "silent" }) });
  const registry = new RedisDeviceRegistry(store, { onChanged: (id) => cache.drop(id) });
  const cache = new CachedRegistry(opts.wrap?.(registry) ?? registry, { maxAgeMs: opts.maxAgeMs ?? 60_000, maxEntries: 1000 }, opts.now);
  let noticed: Array<() => void> = [];
  const feed = new RegistryChangeFeed(store, cache, log.logger, () => {
    for (const wake of noticed) wake();
    noticed = [];
  });
  await store.start();
  const opened = log.next("registry-cache-open");
  await feed.start();
  started.push({ stop: () => feed.stop() }, { stop: () => store.stop() });
  const it: Instance = {
    store,
    registry,
    cache,
    feed,
    log,
    nextNotice: () => new Promise((resolve) => noticed.push(resolve)),
    open: () => (cache.isOpen ? Promise.resolve() : opened.then(() => undefined)),
  };
  await it.open();
  return it;
}

/**
 * Runs a write, then waits until every one of `instances` has its notice (the writer too: its own notice
 * comes back to it, and would drop an answer read meanwhile).
 */
async function written<T>(instances: Instance[], write: () => Promise<T>): Promise<T> {
  const noticed = Promise.all(instances.map((i) => i.nextNotice()));
  const result = await write();
  await noticed;
  return result;
}

const prefix = () => `rc-${randomBytes(3).toString("hex")}:`;
const rec = (id: string, transport: DeviceRecord["transport"] = "xmpp"): DeviceRecord =>
  transport === "http" ? { id, transport, httpTarget: "http://10.0.0.1:80" } : { id, transport };

describe("registry cache between two instances", () => {
  let a: Instance;
  let b: Instance;

  before(async () => {
    const p = prefix();
    a = await instance(p);
    b = await instance(p);
  });

  it("answers a device again from memory: no GET for a hit, an absent entry too", async () => {
    await written([a, b], () => a.registry.put(rec("hit-1")));
    const before = await gets();
    assert.equal((await b.cache.get("hit-1"))?.transport, "xmpp");
    assert.equal(await b.cache.get("hit-none"), undefined);
    assert.equal(await gets(), before + 2, "one GET per device");
    for (let i = 0; i < 50; i++) {
      assert.equal((await b.cache.get("hit-1"))?.transport, "xmpp");
      assert.equal(await b.cache.get("HIT-NONE"), undefined);
    }
    assert.equal(await gets(), before + 2, "then none");
  });

  it("a change made through one instance is seen by the other once its notice arrives; a delete too", async () => {
    await written([a, b], () => a.registry.put(rec("chg-1")));
    assert.equal((await b.cache.get("chg-1"))?.transport, "xmpp");
    await written([b], () => a.registry.put(rec("chg-1", "http")));
    assert.equal((await b.cache.get("chg-1"))?.transport, "http");
    await written([b], () => a.registry.delete("chg-1"));
    assert.equal(await b.cache.get("chg-1"), undefined);
  });

  it("a device without an entry, remembered as such, is seen once created elsewhere", async () => {
    assert.equal(await b.cache.get("neg-1"), undefined);
    assert.equal(await b.cache.get("neg-1"), undefined);
    await written([b], () => a.registry.put(rec("neg-1", "http")));
    assert.equal((await b.cache.get("neg-1"))?.transport, "http");
  });

  it("the instance that made a change reads it at once, whatever its own notice does", async () => {
    await a.registry.put(rec("own-1"));
    assert.equal((await a.cache.get("own-1"))?.transport, "xmpp");
    await a.registry.put(rec("own-1", "http")); // no wait for anything
    assert.equal((await a.cache.get("own-1"))?.transport, "http");
    await a.registry.delete("own-1");
    assert.equal(await a.cache.get("own-1"), undefined);
  });

  it("a put refused for its address tells the others too (refused late, its record was written and put back)", async () => {
    await a.registry.put({ ...rec("addr-owner"), legacyAddress: "10.4.0.1:80" });
    await written([a, b], () => a.registry.put(rec("addr-taker")));
    assert.equal((await b.cache.get("addr-taker"))?.legacyAddress, undefined);
    await written([b], () =>
      assert.rejects(a.registry.put({ ...rec("addr-taker", "http"), legacyAddress: "10.4.0.1:80" }), (err) => isGatewayError(err)),
    );
    assert.equal((await b.cache.get("addr-taker"))?.transport, "xmpp", "read again: as it was");
  });

  it("an operator's hand edit is seen at once when anything but an id is published on the channel", async () => {
    await written([a, b], () => a.registry.put(rec("hand-1")));
    await written([a, b], () => a.registry.put(rec("hand-2")));
    assert.equal((await b.cache.get("hand-1"))?.transport, "xmpp");
    assert.equal((await b.cache.get("hand-2"))?.transport, "xmpp");
    await probe.set(a.store.keys.device("hand-1"), JSON.stringify(rec("hand-1", "http")));
    await probe.set(a.store.keys.device("hand-2"), JSON.stringify(rec("hand-2", "http")));
    assert.equal((await b.cache.get("hand-1"))?.transport, "xmpp", "unannounced: still the kept answer");
    await written([b], () => probe.publish(a.store.keys.registryChanges(), "*"));
    assert.equal((await b.cache.get("hand-1"))?.transport, "http");
    assert.equal((await b.cache.get("hand-2"))?.transport, "http");
  });
});

describe("a read under way when the notice arrives", () => {
  it("answers its lookup but is not kept: the next lookup reads Redis again", async () => {
    const p = prefix();
    const a = await instance(p);
    // B's reads are answered by Redis, then held until the test lets them go.
    let release: () => void = () => undefined;
    let held = false;
    const b = await instance(p, {
      wrap: (registry) => ({
        get: async (id) => {
          const answer = await registry.get(id);
          if (held) await new Promise<void>((resolve) => (release = resolve));
          return answer;
        },
      }),
    });
    await written([a, b], () => a.registry.put(rec("race-1")));
    held = true;
    const before = await gets();
    const lookup = b.cache.get("race-1");
    await pollUntil("B's GET answered by Redis", async () => (await gets()) === before + 1, { intervalMs: 5 });
    await written([b], () => a.registry.put(rec("race-1", "http"))); // the notice is in before B's answer
    held = false;
    release();
    assert.equal((await lookup)?.transport, "xmpp", "the lookup gets what Redis answered");
    assert.equal((await b.cache.get("race-1"))?.transport, "http", "which was not kept");
    assert.equal((await b.cache.get("race-1"))?.transport, "http");
    assert.equal(await gets(), before + 2, "one GET for the race, one after it, then hits");
  });
});

describe("while notices may be missed", () => {
  it("a subscription refused (a channel the ACL user may no longer use): every lookup reads Redis, until heard again", async () => {
    const p = prefix();
    const a = await instance(p);
    await written([a], () => a.registry.put(rec("acl-1")));
    await a.cache.get("acl-1");
    const closed = a.log.next("registry-cache-closed");
    const refused = a.log.next("subscribe-failed");
    // Redis disconnects subscribers of channels their user loses; the subscription is then refused.
    await probe.call("ACL", "SETUSER", "default", "resetchannels");
    try {
      await closed;
      await refused; // on the connection made again, which stays up
      assert.equal(a.cache.isOpen, false);
      const before = await gets();
      for (let i = 0; i < 3; i++) assert.equal((await a.cache.get("acl-1"))?.transport, "xmpp");
      assert.equal(await gets(), before + 3, "each lookup read Redis");
      assert.equal(a.cache.size, 0);
    } finally {
      await probe.call("ACL", "SETUSER", "default", "allchannels");
    }
    // Its check does not come back on a connection that stays up: the feed connects again, which subscribes.
    const opened = a.log.next("registry-cache-open");
    await a.log.next("registry-changes-unheard");
    await opened;
    await a.cache.get("acl-1");
    const before = await gets();
    await a.cache.get("acl-1");
    assert.equal(await gets(), before, "kept again");
  });

  it("Redis gone: lookups fail as without a cache instead of answering from memory; back, the cache starts empty", async () => {
    const p = prefix();
    const a = await instance(p);
    await written([a], () => a.registry.put(rec("gone-1")));
    assert.equal((await a.cache.get("gone-1"))?.transport, "xmpp");
    const closed = a.log.next("registry-cache-closed");
    await server.kill();
    await closed;
    await assert.rejects(a.cache.get("gone-1"), (err) => isGatewayError(err) && err.code === "GW_STORE_UNAVAILABLE");
    const opened = a.log.next("registry-cache-open");
    await server.restart(); // empty: the entry is gone, and no notice said so
    await opened;
    assert.equal(await a.cache.get("gone-1"), undefined);
    await pollUntil("the test's own client back", async () => (await probe.ping()) === "PONG");
  });
});

describe("GATEWAY_REGISTRY_CACHE_MS", () => {
  it("bounds how long a change no notice told of goes unseen", async () => {
    let t = 0;
    const a = await instance(prefix(), { maxAgeMs: 5000, now: () => t });
    await written([a], () => a.registry.put(rec("ttl-1")));
    assert.equal((await a.cache.get("ttl-1"))?.transport, "xmpp");
    // Written behind the gateway's back (redis-cli), and unannounced.
    await probe.set(a.store.keys.device("ttl-1"), JSON.stringify(rec("ttl-1", "http")));
    t += 4999;
    assert.equal((await a.cache.get("ttl-1"))?.transport, "xmpp");
    t += 1;
    assert.equal((await a.cache.get("ttl-1"))?.transport, "http");
  });

  it("on the real clock too", async () => {
    const a = await instance(prefix(), { maxAgeMs: 100 });
    await written([a], () => a.registry.put(rec("ttl-2")));
    assert.equal((await a.cache.get("ttl-2"))?.transport, "xmpp");
    await probe.set(a.store.keys.device("ttl-2"), JSON.stringify(rec("ttl-2", "http")));
    const since = performance.now();
    await pollUntil("the change read", async () => (await a.cache.get("ttl-2"))?.transport === "http", { intervalMs: 10 });
    assert.ok(performance.now() - since < 1000, "within the bound (and the poll's step)");
  });
});

describe("the wiring (buildStores)", () => {
  const env = (p: string, over: Record<string, string> = {}) =>
    loadConfig({ XMPP_COMPONENT_SECRET: "x", REDIS_URL: server.url, REDIS_KEY_PREFIX: p, LOG_LEVEL: "silent", ...over });

  it("one instance's write drops the other's answer (counted in gateway_registry_cache_invalidations_total); 0 is no cache", async () => {
    const p = prefix();
    const logger = pino({ level: "silent" });
    const metricsA = createMetrics();
    const metricsB = createMetrics();
    const off = createMetrics();
    const storesA = buildStores(env(p, { GATEWAY_INSTANCE_ID: "a" }), logger, metricsA);
    const storesB = buildStores(env(p, { GATEWAY_INSTANCE_ID: "b" }), logger, metricsB);
    const storesOff = buildStores(env(p, { GATEWAY_INSTANCE_ID: "off", GATEWAY_REGISTRY_CACHE_MS: "0" }), logger, off);
    for (const s of [storesA, storesB, storesOff]) {
      await s.start();
      started.push(s);
    }
    await pollUntil("B's cache open", () => storesB.registryCache.isOpen);
    const invalidations = async () => (await metricsB.registryCacheInvalidations.get()).values[0]?.value ?? 0;

    await storesA.registry.put(rec("wire-1"));
    await pollUntil("B's first invalidation counted", async () => (await invalidations()) === 1);
    assert.equal((await storesB.registryCache.get("wire-1"))?.transport, "xmpp");
    await storesA.registry.put(rec("wire-1", "http"));
    await pollUntil("B's second invalidation counted", async () => (await invalidations()) === 2);
    assert.equal((await storesB.registryCache.get("wire-1"))?.transport, "http");

    assert.equal(storesOff.registryCache.isOpen, false);
    const before = await gets();
    for (let i = 0; i < 3; i++) await storesOff.registryCache.get("wire-1");
    assert.equal(await gets(), before + 3, "GATEWAY_REGISTRY_CACHE_MS=0: every lookup reads Redis");
    assert.deepEqual(storesOff.registryCache.lookups, { hit: 0, miss: 0, bypass: 3 });
  });
});
