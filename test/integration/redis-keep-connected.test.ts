// A connection that ioredis gives up by itself ("end": in Sentinel mode, a connect attempt aborted by the
// failover detector of the connection that was lost) is connected again, the store's and a subscriber's
// alike; one closed by stop() is not. The ending is provoked here with ioredis' own disconnect(), which ends a
// client the same way and at a moment of the test's choosing.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { pino } from "pino";
import { RedisStore } from "../../gateway/redis/client.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";

let server: RedisServer;
let redis: RedisStore;
const logged: string[] = [];

before(async () => {
  server = await startRedis();
  redis = new RedisStore(
    { url: server.url, keyPrefix: "kc:", commandTimeoutMs: 1000 },
    { logger: pino({ level: "info" }, { write: (line: string) => logged.push(line) }) },
  );
  await redis.start();
});
after(async () => {
  await redis.stop();
  await server.stop();
});

it("connects the store again after the client ended the connection on its own", async () => {
  assert.equal(redis.ready, true);
  const ended = new Promise<void>((resolve) => redis.client.once("end", () => resolve()));
  redis.client.disconnect();
  await ended;
  assert.equal(redis.ready, false);
  await pollUntil("the store to be ready again", () => redis.ready, { timeoutMs: 10_000, intervalMs: 10 });
  assert.ok(
    logged.some((l) => l.includes('"event":"ended"')),
    "the ending is logged",
  );
  await redis.run((c) => c.set("kc:x", "1"));
  assert.equal(await redis.run((c) => c.get("kc:x")), "1");
});

it("connects a subscriber again, and subscribes its channels again, after its connection ended on its own", async () => {
  const subscriber = redis.subscriber(pino({ level: "silent" }));
  await subscriber.start();
  try {
    const got: string[] = [];
    await subscriber.listen("kc:channel", (m) => got.push(m)).ready;
    const connection = (subscriber as unknown as { connection: RedisStore["client"] }).connection;
    const ended = new Promise<void>((resolve) => connection.once("end", () => resolve()));
    connection.disconnect();
    await ended;
    await pollUntil("the subscriber to be back and subscribed", async () => (await redis.publish("kc:channel", "again")) === 1, {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    await pollUntil("the message to arrive", () => got.includes("again"), { timeoutMs: 5_000 });
  } finally {
    await subscriber.stop();
  }
});

it("leaves a store closed by stop() closed", async () => {
  const lines: string[] = [];
  const store = new RedisStore(
    { url: server.url, keyPrefix: "kc2:", commandTimeoutMs: 1000 },
    { logger: pino({ level: "info" }, { write: (line: string) => lines.push(line) }) },
  );
  await store.start();
  assert.equal(store.ready, true);
  const ended = new Promise<void>((resolve) => store.client.once("end", () => resolve()));
  await store.stop();
  await ended;
  // Its "end" came after stop(): nothing took it for an ending to undo (the first test's log has the line).
  assert.deepEqual(
    lines.filter((l) => l.includes('"event":"ended"')),
    [],
  );
});
