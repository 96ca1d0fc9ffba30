// Asynchronous requests' entries in a real Redis: pending or queued until their deadline (plus a grace), then
// expired (504 GW_DEVICE_TIMEOUT); the first outcome written stands, whichever of an expiry and a reply comes
// first; a deadline moved before it passes keeps the request open.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { AsyncRequests } from "../../gateway/delivery/async-requests.js";
import type { StoredOutcome } from "../../gateway/delivery/stored-outcome.js";
import { RedisStore } from "../../gateway/redis/client.js";

let server: RedisServer;
let redis: RedisStore;
let requests: AsyncRequests;
const reply: StoredOutcome = { kind: "reply", statusCode: 200, headers: [["X-A", "1"]], body: Buffer.from("on").toString("base64") };
/** Well past any grace: a reader at this moment finds every deadline below gone. */
const LATER = Date.now() + 3_600_000;

before(async () => {
  server = await startRedis();
  redis = new RedisStore({ url: server.url, keyPrefix: "ar:", commandTimeoutMs: 1000 }, { logger: pino({ level: "silent" }) });
  await redis.start();
  requests = new AsyncRequests(redis, 60_000);
});
after(async () => {
  await redis.stop();
  await server.stop();
});

const codeOf = (state: Awaited<ReturnType<AsyncRequests["get"]>>) =>
  state?.state === "done" ? (state.outcome.kind === "error" ? state.outcome.code : state.outcome.statusCode) : state?.state;

it("reads pending until the deadline, then expired: 504 GW_DEVICE_TIMEOUT, kept", async () => {
  const id = await requests.accept("dev", Date.now() + 1000);
  assert.equal(codeOf(await requests.get(id)), "pending");
  assert.equal(codeOf(await requests.get(id, LATER)), "GW_DEVICE_TIMEOUT");
  assert.equal(codeOf(await requests.get(id)), "GW_DEVICE_TIMEOUT", "the expiry is written, not only reported");
});

it("a reply after an expiry was read does not replace it: a client never reads two outcomes", async () => {
  const id = await requests.accept("dev", Date.now() + 1000);
  assert.equal(codeOf(await requests.get(id, LATER)), "GW_DEVICE_TIMEOUT");
  await requests.complete(id, "dev", reply);
  assert.equal(codeOf(await requests.get(id)), "GW_DEVICE_TIMEOUT");
});

it("an expiry after the reply was written does not replace it", async () => {
  const id = await requests.accept("dev", Date.now() + 1000);
  await requests.complete(id, "dev", reply);
  assert.equal(codeOf(await requests.get(id, LATER)), 200);
  await requests.markQueued(id, "dev", Date.now() + 1000);
  assert.equal(codeOf(await requests.get(id)), 200, "nor a late queued mark");
});

it("a deadline moved before it passes keeps the request open; moving an ended one answers its outcome", async () => {
  const id = await requests.accept("dev", Date.now() + 1000);
  assert.equal(await requests.extend(id, "dev", LATER + 10_000), undefined);
  assert.equal(codeOf(await requests.get(id, LATER)), "pending", "still open at the first deadline's expiry");
  await requests.markQueued(id, "dev", LATER + 10_000);
  assert.equal(codeOf(await requests.get(id, LATER)), "queued");
  assert.equal(codeOf(await requests.get(id, LATER + 20_000)), "GW_DEVICE_TIMEOUT");
  const ended = await requests.extend(id, "dev", LATER + 60_000);
  assert.equal(ended?.kind === "error" ? ended.code : ended, "GW_DEVICE_TIMEOUT", "an expired request is not taken up again");
  assert.equal(codeOf(await requests.get(id, LATER + 20_000)), "GW_DEVICE_TIMEOUT");
});
