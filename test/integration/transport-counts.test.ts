// Registered devices by transport, kept by the registry's writes in a real Redis (registry/transport-counts.ts):
// every kind of write adds what it changed, two registries writing the same devices at once end with every
// record listed and the counts a full count of the records gives, an older registry (no counts) is counted once from its records,
// and reading the counts never reads the records.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { RedisDeviceRegistry } from "../../gateway/registry/redis-registry.js";
import { RedisStore } from "../../gateway/redis/client.js";
import { TRANSPORTS, type DeviceRecord, type Transport } from "../../gateway/registry/device.js";

let server: RedisServer;
let redis: RedisStore;
let other: RedisStore;
let registry: RedisDeviceRegistry;
/** A second instance's registry on the same Redis. */
let registryB: RedisDeviceRegistry;

const store = (url: string) => new RedisStore({ url, keyPrefix: "tc:", commandTimeoutMs: 2000 }, { logger: pino({ level: "silent" }) });

before(async () => {
  server = await startRedis();
  redis = store(server.url);
  other = store(server.url);
  await Promise.all([redis.start(), other.start()]);
  registry = new RedisDeviceRegistry(redis);
  registryB = new RedisDeviceRegistry(other);
});
beforeEach(async () => {
  await redis.run((c) => c.flushdb());
});
after(async () => {
  await Promise.all([redis.stop(), other.stop()]);
  await server.stop();
});

const on = (id: string, transport: Transport, legacyAddress?: string): DeviceRecord => ({
  id,
  transport,
  ...(transport !== "xmpp" ? { httpTarget: "http://10.0.0.9:80" } : {}),
  ...(legacyAddress !== undefined ? { legacyAddress } : {}),
});

/** The counts as a full read of the records gives them (one that cannot be read counts for none). */
async function recount(): Promise<Record<Transport, number>> {
  const counts = Object.fromEntries(TRANSPORTS.map((t) => [t, 0])) as Record<Transport, number>;
  for (const id of await redis.run((c) => c.smembers(redis.keys.devices()))) {
    const json = await redis.run((c) => c.get(redis.keys.device(id)));
    let transport: Transport | undefined;
    try {
      transport = json === null ? undefined : (JSON.parse(json) as { transport?: Transport }).transport;
    } catch {
      transport = undefined; // not JSON: no transport
    }
    if (transport !== undefined) counts[transport]++;
  }
  return counts;
}

const stored = () => redis.run((c) => c.hgetall(redis.keys.transportCounts()));

describe("transport counts", () => {
  it("follow every kind of write: create, move, same transport again, delete, a delete of nothing", async () => {
    assert.deepEqual(await registry.counts.read(), { xmpp: 0, http: 0, shadow: 0 }, "an empty registry");
    await registry.put(on("a", "http"));
    await registry.put(on("b", "http"));
    await registry.put(on("c", "xmpp"));
    assert.deepEqual(await registry.counts.read(), { xmpp: 1, http: 2, shadow: 0 });
    await registry.upsert(on("a", "shadow"), { existing: true });
    await registry.put(on("b", "http"));
    assert.deepEqual(await registry.counts.read(), { xmpp: 1, http: 1, shadow: 1 });
    assert.equal(await registry.delete("c"), true);
    assert.equal(await registry.delete("c"), false);
    assert.deepEqual(await registry.counts.read(), { xmpp: 0, http: 1, shadow: 1 });
    assert.deepEqual(await registry.counts.read(), await recount());
  });

  it("a put refused for a legacy address another device holds counts nothing", async () => {
    await registry.counts.read();
    await registry.put(on("owner", "http", "10.2.0.1:80"));
    await assert.rejects(registry.put(on("intruder", "xmpp", "10.2.0.1:80")));
    await registry.put(on("mover", "xmpp"));
    await assert.rejects(registry.upsert(on("mover", "http", "10.2.0.1:80"), { existing: true }));
    assert.deepEqual(await registry.counts.read(), await recount());
    assert.deepEqual(await registry.counts.read(), { xmpp: 1, http: 1, shadow: 0 });
  });

  it("start-up renames of ids with capitals: a rename keeps the count, a dropped duplicate leaves it", async () => {
    await registry.counts.read();
    await registry.put(on("dev-1", "http"));
    // Written as an earlier release did (ids as given, no counts of their own).
    await redis.run((c) =>
      Promise.all([
        c.set(redis.keys.device("DEV-1"), JSON.stringify(on("DEV-1", "http"))),
        c.set(redis.keys.device("Dev-2"), JSON.stringify(on("Dev-2", "xmpp"))),
        c.sadd(redis.keys.devices(), "DEV-1", "Dev-2"),
        c.hincrby(redis.keys.transportCounts(), "http", 1),
        c.hincrby(redis.keys.transportCounts(), "xmpp", 1),
      ]),
    );
    const { renamed, dropped } = await registry.canonicalizeIds();
    assert.deepEqual([renamed, dropped], [["Dev-2"], ["DEV-1"]]);
    assert.deepEqual(await registry.counts.read(), await recount());
    assert.deepEqual(await registry.counts.read(), { xmpp: 1, http: 1, shadow: 0 });
  });

  it("two instances writing the same devices at once end with the counts of the records", async () => {
    await registry.counts.read();
    const ids = Array.from({ length: 20 }, (_, i) => `d-${i}`);
    const writes = (r: RedisDeviceRegistry, seed: number) =>
      Promise.all(
        ids.flatMap((id, i) =>
          Array.from({ length: 5 }, (_, k) => {
            const transport = TRANSPORTS[(i + k + seed) % TRANSPORTS.length] as Transport;
            return k === 4 && (i + seed) % 3 === 0 ? r.delete(id) : r.put(on(id, transport));
          }),
        ),
      );
    // Rounds of the same race: a put and a delete of one id from the two instances interleave differently
    // in each, and a record the id list lost shows only in some of them.
    for (let round = 0; round < 20; round++) {
      await Promise.all([writes(registry, round), writes(registryB, round + 1)]);
      assert.deepEqual(await registryB.counts.read(), await recount());
      // Every record is listed (a put between a delete's two steps must not leave its record out of list()).
      const records = await redis.run((c) => c.keys(redis.keys.device("*").replace("{*}", "*")));
      assert.equal((await registry.list()).length, records.length, `round ${round}`);
    }
  });

  it("an older registry (records, no counts) is counted once from its records; changes add to that count", async () => {
    await redis.run((c) =>
      Promise.all(
        ["x1", "x2", "h1"].flatMap((id) => [
          c.set(redis.keys.device(id), JSON.stringify(on(id, id.startsWith("x") ? "xmpp" : "http"))),
          c.sadd(redis.keys.devices(), id),
        ]),
      ),
    );
    // A change before the first count does not start a hash of its own (it would count that change alone).
    await registry.delete("h1");
    assert.deepEqual(await stored(), {});
    // Two instances read at once: one count is kept.
    const [a, b] = await Promise.all([registry.counts.read(), registryB.counts.read()]);
    assert.deepEqual(
      [a, b],
      [
        { xmpp: 2, http: 0, shadow: 0 },
        { xmpp: 2, http: 0, shadow: 0 },
      ],
    );
    assert.deepEqual(await stored(), { xmpp: "2", http: "0", shadow: "0" });
    await registry.put(on("s1", "shadow"));
    assert.deepEqual(await registry.counts.read(), { xmpp: 2, http: 0, shadow: 1 });
  });

  it("once counted, reading them reads no record (three numbers, whatever the fleet's size)", async () => {
    for (let i = 0; i < 50; i++) await registry.put(on(`n-${i}`, i % 2 === 0 ? "xmpp" : "http"));
    await registry.counts.read();
    // The records made unreadable: a read that still looked at them would count differently, or fail.
    await redis.run((c) => c.set(redis.keys.device("n-0"), "not json"));
    await redis.run((c) => c.del(redis.keys.device("n-1")));
    assert.deepEqual(await registry.counts.read(), { xmpp: 25, http: 25, shadow: 0 });
    // Deleted, they are counted again from the records as they are now.
    await redis.run((c) => c.del(redis.keys.transportCounts()));
    assert.deepEqual(await registry.counts.read(), await recount());
    assert.deepEqual(await registry.counts.read(), { xmpp: 24, http: 24, shadow: 0 });
  });
});
