// Idempotency-Key entries in a real Redis: a running entry answers 409 until its deadline (plus grace),
// then "outcome unknown" (504), kept; outcomes are written only over the request's own running entry, so a
// retry gets the same answer whichever write came last; the key is never freed by an expiry.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { IdempotencyStore, RUNNING_GRACE_MS } from "../../gateway/delivery/idempotency.js";
import { storeError } from "../../gateway/delivery/stored-outcome.js";
import { GatewayError } from "../../gateway/errors.js";
import { RedisStore } from "../../gateway/redis/client.js";

/** The catalogue error a promise rejects with. */
async function thrown(fn: () => Promise<unknown>): Promise<GatewayError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof GatewayError, String(err));
    return err;
  }
  assert.fail("expected a rejection");
}

let server: RedisServer;
let redis: RedisStore;
let store: IdempotencyStore;
const reply = {
  kind: "reply" as const,
  statusCode: 200,
  headers: [["X-A", "1"]] as Array<[string, string]>,
  body: Buffer.from("on").toString("base64"),
};

before(async () => {
  server = await startRedis();
  redis = new RedisStore({ url: server.url, keyPrefix: "i:", commandTimeoutMs: 1000 }, { logger: pino({ level: "silent" }) });
  await redis.start();
  store = new IdempotencyStore(redis, 60_000);
});
after(async () => {
  await redis.stop();
  await server.stop();
});

it("runs the first request, answers 409 while it runs, then its kept outcome", async () => {
  const now = Date.now();
  assert.deepEqual(await store.begin("d1", "k", "fp", now + 5000, now), { state: "new" });
  assert.equal((await thrown(() => store.begin("d1", "k", "fp", now + 5000, now))).code, "GW_IDEMPOTENCY_IN_FLIGHT");
  assert.equal((await thrown(() => store.begin("d1", "k", "other", now + 5000, now))).code, "GW_IDEMPOTENCY_MISMATCH");
  await store.finish("d1", "k", "fp", reply);
  assert.deepEqual(await store.begin("d1", "k", "fp", now + 5000, now), { state: "done", outcome: reply });
});

it("a running entry whose request never settled becomes a kept 504 after its deadline and grace, never a new run", async () => {
  const now = Date.now();
  await store.begin("d2", "k", "fp", now + 1000, now);
  const justBefore = now + 1000 + RUNNING_GRACE_MS - 1;
  assert.equal((await thrown(() => store.begin("d2", "k", "fp", justBefore, justBefore))).code, "GW_IDEMPOTENCY_IN_FLIGHT");
  const later = now + 1000 + RUNNING_GRACE_MS + 1;
  const expired = await store.begin("d2", "k", "fp", later + 5000, later);
  assert.equal(expired.state, "done");
  assert.equal(expired.state === "done" && expired.outcome.kind === "error" ? expired.outcome.code : undefined, "GW_DEVICE_TIMEOUT");
  // An outcome that arrives after that changes nothing: every retry keeps getting the same answer.
  await store.finish("d2", "k", "fp", reply);
  await store.abandon("d2", "k", "fp");
  assert.deepEqual(await store.begin("d2", "k", "fp", later + 5000, later), expired);
});

it("abandon frees only the request's own running entry; extend moves its deadline", async () => {
  const now = Date.now();
  await store.begin("d3", "k", "fp", now + 1000, now);
  await store.abandon("d3", "k", "someone else");
  assert.equal((await thrown(() => store.begin("d3", "k", "fp", now + 1000, now))).code, "GW_IDEMPOTENCY_IN_FLIGHT");
  await store.extend("d3", "k", "fp", now + 60_000);
  const later = now + 1000 + RUNNING_GRACE_MS + 1;
  assert.equal((await thrown(() => store.begin("d3", "k", "fp", later, later))).code, "GW_IDEMPOTENCY_IN_FLIGHT", "queued: still running");
  await store.abandon("d3", "k", "fp");
  assert.deepEqual(
    await store.begin("d3", "k", "fp", now + 1000, now),
    { state: "new" },
    "a request that never reached the device frees its key",
  );
  const timeout = storeError(new GatewayError("GW_DEVICE_TIMEOUT"));
  await store.finish("d3", "k", "fp", timeout);
  assert.deepEqual(await store.begin("d3", "k", "fp", now + 1000, now), { state: "done", outcome: timeout });
});
