// Correlation records in a real Redis (correlation/store.ts): a record and its id in the JID's set are written
// and removed together, found by the reply's sender and id only, and an id is never written twice.
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
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

  it("removes a record and its id in the JID's set together, and leaves the others", async () => {
    await Promise.all(["id-1", "id-2"].map((id) => store.put(id, entry(), 30_000)));
    await store.remove("id-1", JID);
    assert.deepEqual(await present("id-1"), { record: false, inSet: false });
    assert.deepEqual(await present("id-2"), { record: true, inSet: true });
    assert.equal(await store.get(JID, "id-1"), undefined);
  });
});
