// Correlation records in a real Redis (correlation/store.ts): a record and its id in the JID's set are written
// and removed together; a removal waits for the next put and leaves with it, ahead of it, or goes by itself
// within REMOVAL_WAIT_MS when no put comes; flushRemovals() sends what waits at once, in one command.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { commandCounts } from "../helpers/redis-probes.js";
import { pollUntil } from "../../local-stack/ports.js";
import { RedisStore } from "../../gateway/redis/client.js";
import { CorrelationStore, type CorrelationEntry } from "../../gateway/correlation/store.js";

let server: RedisServer;
let redis: RedisStore;
let store: CorrelationStore;

const JID = "dev-1@devices.example.com/agent";
const entry = (): CorrelationEntry => ({ owner: "gw-a", deviceId: "dev-1", jid: JID, deadline: Date.now() + 30_000 });

before(async () => {
  server = await startRedis();
  redis = new RedisStore({ url: server.url, keyPrefix: "cs:", commandTimeoutMs: 2000 }, { logger: pino({ level: "silent" }) });
  await redis.start();
});
beforeEach(async () => {
  store = new CorrelationStore(redis);
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

  it("sends every removal waiting at once on flushRemovals()", async () => {
    await Promise.all(["id-1", "id-2", "id-3"].map((id) => store.put(id, entry(), 30_000)));
    for (const id of ["id-1", "id-2", "id-3"]) store.remove(id, JID);
    store.flushRemovals();
    // Issued after the removals, on the same connection: answered after them.
    const after = await Promise.all(["id-1", "id-2", "id-3"].map(present));
    assert.deepEqual(after, [
      { record: false, inSet: false },
      { record: false, inSet: false },
      { record: false, inSet: false },
    ]);
    store.flushRemovals(); // nothing waits: a no-op
  });

  it("sends the removals of exchanges with different devices in one command", async () => {
    const jids = ["dev-1@devices.example.com/agent", "dev-2@devices.example.com/agent", "dev-3@devices.example.com/a"];
    await Promise.all(jids.map((jid, i) => store.put(`id-${i}`, { ...entry(), jid }, 30_000)));
    await redis.run((c) => c.config("RESETSTAT"));
    jids.forEach((jid, i) => store.remove(`id-${i}`, jid));
    store.flushRemovals();
    const left = await Promise.all(jids.map((jid, i) => redis.run((c) => c.exists(redis.keys.exchange(jid, `id-${i}`)))));
    assert.deepEqual(left, [0, 0, 0]);
    const calls = await commandCounts(server.port);
    assert.equal(calls.eval + calls.evalsha, 1, "one script call for the three");
  });
});
