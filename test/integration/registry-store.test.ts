// The device registry in a real Redis, in the states a put, delete or start-up rename cut short between two
// of its single-slot steps leaves behind (RedisDeviceRegistry): each reads as before the change, or after
// it, and the next change of that device or address finishes it.
import assert from "node:assert/strict";
import { after, before, beforeEach, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { RedisDeviceRegistry } from "../../gateway/registry/redis-registry.js";
import { RedisStore } from "../../gateway/redis/client.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";

let server: RedisServer;
let redis: RedisStore;
let registry: RedisDeviceRegistry;

before(async () => {
  server = await startRedis();
  redis = new RedisStore({ url: server.url, keyPrefix: "r:", commandTimeoutMs: 1000 }, { logger: pino({ level: "silent" }) });
  await redis.start();
  registry = new RedisDeviceRegistry(redis);
});
beforeEach(async () => {
  await redis.run((c) => c.flushdb());
});
after(async () => {
  await redis.stop();
  await server.stop();
});

const record = (id: string, legacyAddress?: string): DeviceRecord => ({
  id,
  transport: "http",
  httpTarget: "http://10.0.0.9:80",
  ...(legacyAddress !== undefined ? { legacyAddress } : {}),
});
const index = (address: string) => redis.run((c) => c.get(redis.keys.legacyIndex(address)));

it("a delete cut short after the record: the id and the index entry are skipped, and the address is free", async () => {
  await registry.put(record("gone", "10.1.0.1:80"));
  await registry.put(record("kept"));
  await redis.run((c) => c.del(redis.keys.device("gone")));
  assert.deepEqual(
    (await registry.list()).map((r) => r.id),
    ["kept"],
    "an id whose record is gone is not listed",
  );
  assert.equal(await registry.findByLegacyAddress("10.1.0.1:80"), undefined, "the index entry does not speak for a missing record");
  assert.equal(await registry.put(record("next", "10.1.0.1:80")), true, "another device takes the stale address");
  assert.equal(await index("10.1.0.1:80"), "next");
  assert.equal((await registry.findByLegacyAddress("10.1.0.1:80"))?.id, "next");
});

it("a move cut short before the old address was freed: the old entry is stale, and taken over", async () => {
  await registry.put(record("mover", "10.2.0.1:80"));
  // The record names the new address, both index entries name the device.
  await redis.run((c) => c.set(redis.keys.device("mover"), JSON.stringify(record("mover", "10.2.0.2:80"))));
  await redis.run((c) => c.set(redis.keys.legacyIndex("10.2.0.2:80"), "mover"));
  assert.equal(await registry.findByLegacyAddress("10.2.0.1:80"), undefined);
  assert.equal((await registry.findByLegacyAddress("10.2.0.2:80"))?.id, "mover");
  await registry.put(record("taker", "10.2.0.1:80"));
  assert.equal((await registry.findByLegacyAddress("10.2.0.1:80"))?.id, "taker");
  await assert.rejects(registry.put(record("other", "10.2.0.2:80")), /already belongs to device mover/, "a live entry still conflicts");
  assert.equal(await registry.get("other"), undefined, "and the refused put left no record");
});

it("a put cut short before its address was claimed: found by id, not by address, until it is put again", async () => {
  await redis.run((c) => c.set(redis.keys.device("half"), JSON.stringify(record("half", "10.3.0.1:80"))));
  await redis.run((c) => c.sadd(redis.keys.devices(), "half"));
  assert.equal((await registry.get("half"))?.legacyAddress, "10.3.0.1:80");
  assert.equal(await registry.findByLegacyAddress("10.3.0.1:80"), undefined);
  assert.equal(await registry.put(record("half", "10.3.0.1:80")), false, "the repeated put replaces it");
  assert.equal((await registry.findByLegacyAddress("10.3.0.1:80"))?.id, "half");
});

it("a put that loses its address to a device holding it puts the record back as it was", async () => {
  await registry.put(record("owner", "10.4.0.1:80"));
  await registry.put(record("loser", "10.4.0.2:80"));
  await assert.rejects(registry.put(record("loser", "10.4.0.1:80")), /already belongs to device owner/);
  assert.equal((await registry.get("loser"))?.legacyAddress, "10.4.0.2:80");
  assert.equal((await registry.findByLegacyAddress("10.4.0.2:80"))?.id, "loser");
  // Lost between its check and its claim: the owner's claim is sent right after the put's first read (one
  // connection, commands in order), so it lands between the put's check and its claim.
  await redis.run((c) => c.del(redis.keys.legacyIndex("10.4.0.1:80")));
  const claimedMeanwhile = registry.put(record("late", "10.4.0.1:80"));
  await redis.run((c) => c.set(redis.keys.legacyIndex("10.4.0.1:80"), "owner"));
  await assert.rejects(claimedMeanwhile, /already belongs to device owner/);
  assert.equal(await registry.get("late"), undefined, "the record written before the claim is undone");
  assert.ok(!(await registry.list()).some((r) => r.id === "late"));
  assert.equal(await index("10.4.0.1:80"), "owner");
});

it("a start-up rename cut short is finished by the next start", async () => {
  await redis.run((c) => c.set(redis.keys.device("OLD-1"), JSON.stringify(record("OLD-1", "10.5.0.1:80"))));
  await redis.run((c) => c.sadd(redis.keys.devices(), "OLD-1"));
  await redis.run((c) => c.set(redis.keys.legacyIndex("10.5.0.1:80"), "OLD-1"));
  // The first start wrote the new record and moved the index, then died.
  await redis.run((c) => c.set(redis.keys.device("old-1"), JSON.stringify(record("old-1", "10.5.0.1:80"))));
  await redis.run((c) => c.set(redis.keys.legacyIndex("10.5.0.1:80"), "old-1"));
  await registry.canonicalizeIds();
  assert.deepEqual(
    (await registry.list()).map((r) => r.id),
    ["old-1"],
  );
  assert.equal((await registry.findByLegacyAddress("10.5.0.1:80"))?.id, "old-1", "the address stays with the moved entry");
  assert.equal(await redis.run((c) => c.exists(redis.keys.device("OLD-1"))), 0);
});

const ordered = () => redis.run((c) => c.zrange(redis.keys.deviceIds(), 0, -1));
const members = async () => (await redis.run((c) => c.smembers(redis.keys.devices()))).sort();

it("the ordered ids follow every put, delete, undone put and start-up rename, as the id set does", async () => {
  for (const id of ["b", "a", "c"]) await registry.put(record(id));
  await registry.delete("b");
  await registry.put(record("owner", "10.6.0.1:80"));
  await assert.rejects(registry.put(record("loser", "10.6.0.1:80")), /already belongs/);
  await redis.run((c) => c.set(redis.keys.device("OLD-2"), JSON.stringify(record("OLD-2"))));
  await redis.run((c) => c.sadd(redis.keys.devices(), "OLD-2"));
  await registry.canonicalizeIds();
  assert.deepEqual(await ordered(), ["a", "c", "old-2", "owner"]);
  assert.deepEqual(await ordered(), await members());
});

it("ids missing from the ordered ids (a registry from before them) are filled in; pages skip ids whose record is gone", async () => {
  for (const id of ["dev-2", "dev-10", "dev-1", "other"]) {
    await redis.run((c) => c.set(redis.keys.device(id), JSON.stringify(record(id))));
    await redis.run((c) => c.sadd(redis.keys.devices(), id));
  }
  await registry.put(record("dev-3"));
  assert.equal(await registry.indexIds(), 4, "the four the set alone held");
  assert.equal(await registry.indexIds(), 0, "a second run adds nothing");
  assert.deepEqual(await registry.idsIn({ prefix: "dev-" }, 10), ["dev-1", "dev-10", "dev-2", "dev-3"], "byte order, as list()");
  assert.deepEqual(await registry.idsIn({ prefix: "dev-", after: "dev-10" }, 1), ["dev-2"]);
  assert.deepEqual(await registry.idsIn({ after: "dev-3" }, 10), ["other"]);
  assert.equal(await registry.countIn({ prefix: "dev-", after: "dev-1" }), 3);
  assert.equal(await registry.countIn({ prefix: "dev-", after: "dev-9" }), 0);
  await redis.run((c) => c.zadd(redis.keys.deviceIds(), 0, "dev-ghost"));
  const ghost = await registry.getMany(await registry.idsIn({ prefix: "dev-g" }, 10));
  assert.deepEqual(ghost, [undefined], "an id without a record reads as none");
});

it("a change of an entry deleted since it was read (a PATCH, a bulk move, a wave) is refused and brings nothing back", async () => {
  await registry.put(record("patched", "10.1.0.9:80"));
  const read = await registry.get("patched");
  assert.ok(read);
  assert.equal(await registry.delete("patched"), true);
  await assert.rejects(
    registry.upsert({ ...read, transport: "shadow" }, { existing: true }),
    (err: Error & { code?: string }) => err.code === "GW_UNKNOWN_DEVICE",
  );
  assert.equal(await registry.get("patched"), undefined, "the record stays deleted");
  assert.deepEqual(await registry.idsIn({}, 10), [], "and out of the ordered ids");
  assert.equal(await redis.run((c) => c.sismember(redis.keys.devices(), "patched")), 0, "and out of the id set");
  assert.equal(await index("10.1.0.9:80"), null, "its address is not claimed again");
  // An entry that exists is changed as before.
  await registry.put(record("kept"));
  const changed = await registry.upsert({ ...record("kept"), transport: "shadow" }, { existing: true });
  assert.equal(changed.created, false);
  assert.equal((await registry.get("kept"))?.transport, "shadow");
});
