// Correlation records in a real Redis (correlation/store.ts): a record and its id in the JID's set are written
// and removed together; a recorded entry is held first, and never written if its exchange ends meanwhile;
// held entries go when due, or at once on writeHeld(), which after a crossing makes records go unheld for a
// while; the records of one pass go in one command at its end, with the removals waiting; a removal waits
// for the next write and leaves with it, in the order asked, or goes by itself within REMOVAL_WAIT_MS when
// no write comes; flush() sends what waits at once, in one command.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { commandCounts } from "../helpers/redis-probes.js";
import { freePort, pollUntil } from "../../local-stack/ports.js";
import { RedisStore } from "../../gateway/redis/client.js";
import { CorrelationStore, CROSSING_MEMORY_MS, RECORD_HOLD_MS, type CorrelationEntry } from "../../gateway/correlation/store.js";

let server: RedisServer;
let redis: RedisStore;
let store: CorrelationStore;
/** What the store logged, as parsed JSON lines. */
let logged: Array<Record<string, unknown>>;

const JID = "dev-1@devices.example.com/agent";
const entry = (): CorrelationEntry => ({ owner: "gw-a", deviceId: "dev-1", jid: JID, deadline: Date.now() + 30_000 });

before(async () => {
  server = await startRedis();
  redis = new RedisStore({ url: server.url, keyPrefix: "cs:", commandTimeoutMs: 2000 }, { logger: pino({ level: "silent" }) });
  await redis.start();
});
beforeEach(async () => {
  logged = [];
  store = new CorrelationStore(
    redis,
    pino({ level: "info" }, { write: (line: string) => logged.push(JSON.parse(line) as Record<string, unknown>) }),
  );
  await redis.run((c) => c.flushdb());
});
after(async () => {
  await redis.stop();
  await server.stop();
});

/** Whether the record of `id` is there, and whether the JID's set still names it. */
async function present(id: string): Promise<{ record: boolean; inSet: boolean }> {
  const [record, score] = await Promise.all([
    redis.run((c) => c.exists(redis.keys.exchange(JID, id))),
    redis.run((c) => c.zscore(redis.keys.exchangesTo(JID), id)),
  ]);
  return { record: record === 1, inSet: score !== null };
}

describe("correlation store", () => {
  it("writes a record with its id in the JID's set, found by its sender and id only", async () => {
    await store.put("id-1", entry(), 30_000);
    assert.deepEqual(await present("id-1"), { record: true, inSet: true });
    assert.equal((await store.get(JID, "id-1"))?.owner, "gw-a");
    assert.equal(await store.get("intruder@devices.example.com/x", "id-1"), undefined);
  });

  it("refuses an id already written", async () => {
    await store.put("id-1", entry(), 30_000);
    await assert.rejects(store.put("id-1", entry(), 30_000), { code: "GW_INTERNAL" });
  });

  it("sends a removal with the next put, ahead of it", async () => {
    await store.put("id-1", entry(), 30_000);
    store.remove("id-1", JID);
    // Not sent yet: a read issued now still finds it.
    assert.deepEqual(await present("id-1"), { record: true, inSet: true });
    // Commands on one connection are answered in order: once the put is, the removal sent before it was too.
    await store.put("id-2", entry(), 30_000);
    assert.deepEqual(await present("id-1"), { record: false, inSet: false });
    assert.deepEqual(await present("id-2"), { record: true, inSet: true });
  });

  it("sends a removal by itself when no put comes", async () => {
    await store.put("id-1", entry(), 30_000);
    store.remove("id-1", JID);
    assert.deepEqual(await present("id-1"), { record: true, inSet: true });
    await pollUntil("removal sent", async () => !(await present("id-1")).record, { timeoutMs: 10_000 });
    assert.deepEqual(await present("id-1"), { record: false, inSet: false });
  });

  it("sends every removal waiting at once on flush()", async () => {
    await Promise.all(["id-1", "id-2", "id-3"].map((id) => store.put(id, entry(), 30_000)));
    for (const id of ["id-1", "id-2", "id-3"]) store.remove(id, JID);
    void store.flush();
    // Issued after the removals, on the same connection: answered after them.
    const after = await Promise.all(["id-1", "id-2", "id-3"].map(present));
    assert.deepEqual(after, [
      { record: false, inSet: false },
      { record: false, inSet: false },
      { record: false, inSet: false },
    ]);
    assert.deepEqual(await store.flush(), []); // nothing waits: a no-op
  });

  it("sends the removals of exchanges with different devices in one command", async () => {
    const jids = ["dev-1@devices.example.com/agent", "dev-2@devices.example.com/agent", "dev-3@devices.example.com/a"];
    await Promise.all(jids.map((jid, i) => store.put(`id-${i}`, { ...entry(), jid }, 30_000)));
    await redis.run((c) => c.config("RESETSTAT"));
    jids.forEach((jid, i) => store.remove(`id-${i}`, jid));
    void store.flush();
    const left = await Promise.all(jids.map((jid, i) => redis.run((c) => c.exists(redis.keys.exchange(jid, `id-${i}`)))));
    assert.deepEqual(left, [0, 0, 0]);
    const calls = await commandCounts(server.port);
    assert.equal(calls.eval + calls.evalsha, 1, "one script call for the three");
  });

  it("holds a recorded entry: one whose exchange ends meanwhile never reaches Redis, the others go when due", async () => {
    await redis.run((c) => c.config("RESETSTAT"));
    store.record("ended", entry(), 30_000);
    store.record("waiting", entry(), 30_000);
    assert.equal(store.heldCount, 2);
    store.remove("ended", JID);
    assert.equal(store.heldCount, 1, "a held entry removed is forgotten");
    await pollUntil("the held entry written when due", async () => (await present("waiting")).record, { timeoutMs: 10_000 });
    assert.equal(store.heldCount, 0);
    assert.deepEqual(await present("waiting"), { record: true, inSet: true });
    assert.deepEqual(await present("ended"), { record: false, inSet: false });
    const calls = await commandCounts(server.port);
    assert.equal(calls.eval + calls.evalsha, 1, "one script call: the one write, and no removal for the entry never written");
    const ttl = await redis.run((c) => c.pttl(redis.keys.exchange(JID, "waiting")));
    assert.ok(ttl > 0 && ttl <= 30_000 - RECORD_HOLD_MS, `the entry expires when it would have, written at once (PTTL ${ttl})`);
    assert.deepEqual(logged, []);
  });

  it("writes the held entries at once on writeHeld(), ahead of the commands after it", async () => {
    store.record("id-1", entry(), 30_000);
    store.record("id-2", entry(), 30_000);
    store.writeHeld();
    assert.equal(store.heldCount, 0);
    // Issued after writeHeld(), on the same connection: answered after the writes.
    assert.deepEqual(await Promise.all(["id-1", "id-2"].map(present)), [
      { record: true, inSet: true },
      { record: true, inSet: true },
    ]);
    // Written, so no longer held: a removal now goes to Redis.
    store.remove("id-1", JID);
    void store.flush();
    assert.deepEqual(await present("id-1"), { record: false, inSet: false });
  });

  it("writes every record unheld, at the end of its pass, for a while after a crossing", async () => {
    store.record("before", entry(), 30_000);
    store.writeHeld(CROSSING_MEMORY_MS);
    store.record("after", entry(), 30_000);
    assert.equal(store.heldCount, 0, "nothing held");
    // Not sent in this tick: a read issued now finds none of the pass's records.
    assert.deepEqual(await present("after"), { record: false, inSet: false });
    await pollUntil("the pass's record sent", async () => (await present("after")).record, { timeoutMs: 10_000 });
    assert.deepEqual(await present("before"), { record: true, inSet: true });
  });

  it("holds nothing with a hold of 0 (GATEWAY_CORRELATION_HOLD_MS=0): a record goes at the end of its pass", async () => {
    const unheld = new CorrelationStore(redis, pino({ level: "silent" }), 0);
    unheld.record("id-1", entry(), 30_000);
    assert.equal(unheld.heldCount, 0);
    await pollUntil("the pass's record sent", async () => (await present("id-1")).record, { timeoutMs: 10_000 });
  });

  it("sends the records of one pass in one command at its end, with the removals waiting, in the order asked", async () => {
    store.writeHeld(CROSSING_MEMORY_MS);
    await store.put("old", entry(), 30_000);
    store.remove("old", JID);
    await redis.run((c) => c.config("RESETSTAT"));
    store.record("id-1", entry(), 30_000);
    store.record("id-2", entry(), 30_000);
    // A removal asked after its record's write goes after it: the exchange ended in the same pass.
    store.remove("id-2", JID);
    // Not sent in this tick: a read issued now finds none of them.
    assert.deepEqual(await present("id-1"), { record: false, inSet: false });
    await pollUntil("records sent", async () => (await present("id-1")).record, { timeoutMs: 10_000 });
    assert.deepEqual(await Promise.all(["old", "id-1", "id-2"].map(present)), [
      { record: false, inSet: false },
      { record: true, inSet: true },
      { record: false, inSet: false },
    ]);
    const calls = await commandCounts(server.port);
    assert.equal(calls.eval + calls.evalsha, 1, "one script call for the two writes and two removals");
    assert.deepEqual(logged, []);
  });

  it("logs a recorded write whose id is taken, and writes the others of its command", async () => {
    await store.put("taken", { ...entry(), owner: "gw-first" }, 30_000);
    store.record("fresh", entry(), 30_000);
    store.record("taken", entry(), 30_000);
    await pollUntil("refusal logged", () => logged.length > 0, { timeoutMs: 10_000 });
    assert.equal(logged.length, 1);
    assert.equal(logged[0]?.event, "record-not-written");
    assert.equal(logged[0]?.id, "taken");
    assert.equal((await store.get(JID, "taken"))?.owner, "gw-first", "the first record is kept");
    assert.deepEqual(await present("fresh"), { record: true, inSet: true });
  });

  it("refuses a put whose id is taken even when writes of the pass go with it", async () => {
    store.writeHeld(CROSSING_MEMORY_MS);
    await store.put("taken", entry(), 30_000);
    store.record("fresh", entry(), 30_000);
    await assert.rejects(store.put("taken", entry(), 30_000), { code: "GW_INTERNAL" });
    assert.deepEqual(await present("fresh"), { record: true, inSet: true });
    assert.deepEqual(logged, [], "the recorded write went");
  });

  it("logs each recorded write of a command Redis never got, and fails a put with it", async () => {
    // A store whose Redis is not there: with no offline queue, its commands fail at once.
    const gone = new RedisStore(
      { url: `redis://127.0.0.1:${await freePort()}`, keyPrefix: "cs:", commandTimeoutMs: 2000 },
      { logger: pino({ level: "silent" }) },
    );
    const lost = new CorrelationStore(
      gone,
      pino({ level: "info" }, { write: (line: string) => logged.push(JSON.parse(line) as Record<string, unknown>) }),
    );
    lost.record("id-1", entry(), 30_000);
    lost.remove("id-0", JID);
    await assert.rejects(lost.put("id-2", entry(), 30_000), { code: "GW_STORE_UNAVAILABLE" });
    await pollUntil("failure logged", () => logged.length > 0, { timeoutMs: 10_000 });
    assert.deepEqual(
      logged.map((line) => [line.event, line.id]),
      [["record-not-written", "id-1"]],
      "the recorded write logged; the removal and the put's own write not",
    );
    await gone.stop();
  });
});
