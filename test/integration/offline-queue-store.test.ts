// The offline queue's bounds in a real Redis: per device and in all, entries and bytes (the global bound a
// step of its own, before the device's); the totals follow draining, and correct themselves for entries
// whose deadline passed unseen, and for places an enqueue cut short left without an entry.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { OfflineQueue, type QueuedRequest } from "../../gateway/delivery/offline-queue.js";
import { RedisStore } from "../../gateway/redis/client.js";
import { isGatewayError } from "../../gateway/errors.js";

let server: RedisServer;
let redis: RedisStore;
let n = 0;

before(async () => {
  server = await startRedis();
  redis = new RedisStore({ url: server.url, keyPrefix: "q:", commandTimeoutMs: 1000 }, { logger: pino({ level: "silent" }) });
  await redis.start();
});
after(async () => {
  await redis.stop();
  await server.stop();
});

function item(deviceId: string, deadline: number, body = "x"): QueuedRequest {
  return {
    id: `req-${++n}`,
    deviceId,
    deadline,
    message: { method: "POST", resource: "/x", headers: [], body: Buffer.from(body).toString("base64") },
  };
}

async function refusal(p: Promise<void>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    assert.ok(isGatewayError(err) && err.code === "GW_DEVICE_OFFLINE", String(err));
    return err.message;
  }
}

const totals = async () => {
  const { keys } = redis;
  const [count, bytes] = await redis.run((c) => Promise.all([c.zcard(keys.offlineQueuedTotal()), c.get(keys.offlineQueuedBytesTotal())]));
  return { count, bytes: Number(bytes ?? 0) };
};

it("refuses exactly the overflow: per device entries, per device bytes, entries in all, bytes in all", async () => {
  await redis.run((c) => c.flushdb());
  const logger = pino({ level: "silent" });
  const size = JSON.stringify(item("d", 0)).length;
  const queue = new OfflineQueue(redis, logger, { maxPerDevice: 2, maxBytesPerDevice: 10 * size, maxTotal: 3, maxTotalBytes: 100 * size });
  const later = Date.now() + 60_000;
  assert.equal(await refusal(queue.enqueue("a@x/agent", item("a", later))), undefined);
  assert.equal(await refusal(queue.enqueue("a@x/agent", item("a", later))), undefined);
  assert.match((await refusal(queue.enqueue("a@x/agent", item("a", later)))) ?? "", /entries for this device/);
  assert.equal(await refusal(queue.enqueue("b@x/agent", item("b", later))), undefined);
  assert.match((await refusal(queue.enqueue("c@x/agent", item("c", later)))) ?? "", /entries in all/);
  assert.deepEqual((await totals()).count, 3);

  const bytes = new OfflineQueue(redis, logger, { maxPerDevice: 100, maxBytesPerDevice: 2000, maxTotal: 100, maxTotalBytes: 1_000_000 });
  await redis.run((c) => c.flushdb());
  assert.equal(await refusal(bytes.enqueue("d@x/agent", item("d", later, "y".repeat(900)))), undefined);
  assert.match((await refusal(bytes.enqueue("d@x/agent", item("d", later, "y".repeat(900))))) ?? "", /bytes for this device/);
  const total = new OfflineQueue(redis, logger, { maxPerDevice: 100, maxBytesPerDevice: 1_000_000, maxTotal: 100, maxTotalBytes: 3000 });
  assert.equal(await refusal(total.enqueue("e@x/agent", item("e", later, "y".repeat(900)))), undefined);
  assert.match((await refusal(total.enqueue("f@x/agent", item("f", later, "y".repeat(900))))) ?? "", /bytes in all/);
});

it("draining takes entries off both totals; entries past their deadline leave them at the next enqueue", async () => {
  await redis.run((c) => c.flushdb());
  const queue = new OfflineQueue(redis, pino({ level: "silent" }), {
    maxPerDevice: 10,
    maxBytesPerDevice: 1_000_000,
    maxTotal: 2,
    maxTotalBytes: 1_000_000,
  });
  const now = Date.now();
  await queue.enqueue("g@x/agent", item("g", now + 60_000));
  await queue.enqueue("h@x/agent", item("h", now + 1000));
  assert.equal((await totals()).count, 2);
  const delivered: string[] = [];
  await queue.drain(
    "g@x/agent",
    (q) => {
      delivered.push(q.id);
      return Promise.resolve();
    },
    () => assert.fail("not expired"),
  );
  assert.equal(delivered.length, 1);
  assert.equal((await totals()).count, 1, "the drained entry left the total");
  assert.equal(await redis.run((c) => c.exists(redis.keys.offlineQueueBytes("g@x/agent"))), 0, "an emptied device keeps no byte count");

  // h's entry is past its deadline 2 s on (its list would have expired unseen): the next enqueue prunes it.
  const j = item("j", now + 60_000);
  await queue.enqueue("j@x/agent", j, now + 2000);
  const after = await totals();
  assert.equal(after.count, 1);
  assert.equal(after.bytes, Buffer.byteLength(JSON.stringify(j)), "the total bytes are exactly what is queued");
  await queue.enqueue("k@x/agent", item("k", now + 60_000), now + 2000);
  assert.equal((await totals()).count, 2, "the room of the expired entry is given back");
});

it("gives a place back when the device's bounds refuse, and frees one left without its entry at its deadline", async () => {
  await redis.run((c) => c.flushdb());
  const queue = new OfflineQueue(redis, pino({ level: "silent" }), {
    maxPerDevice: 1,
    maxBytesPerDevice: 1_000_000,
    maxTotal: 2,
    maxTotalBytes: 1_000_000,
  });
  const now = Date.now();
  await queue.enqueue("m@x/agent", item("m", now + 60_000));
  assert.match((await refusal(queue.enqueue("m@x/agent", item("m", now + 60_000)))) ?? "", /entries for this device/);
  assert.equal((await totals()).count, 1, "the place the device refused was given back");

  // An instance that died between the two steps of an enqueue: a place taken, no entry written.
  const lost = JSON.stringify(item("n", now + 1000));
  const { keys } = redis;
  await redis.run((c) =>
    Promise.all([
      c.zadd(keys.offlineQueuedTotal(), now + 1000, `lost:${lost.length}`),
      c.incrby(keys.offlineQueuedBytesTotal(), lost.length),
    ]),
  );
  assert.match(
    (await refusal(queue.enqueue("p@x/agent", item("p", now + 60_000), now))) ?? "",
    /entries in all/,
    "held until its deadline",
  );
  const p = item("p", now + 60_000);
  await queue.enqueue("p@x/agent", p, now + 2000);
  const after = await totals();
  assert.equal(after.count, 2, "the lost place was freed at its deadline");
  const mBytes = Number(await redis.run((c) => c.get(keys.offlineQueueBytes("m@x/agent"))));
  assert.equal(after.bytes, mBytes + Buffer.byteLength(JSON.stringify(p)), "the total bytes are exactly what is queued");
});
