// Keys as the release before hash tags wrote them (its gateway/redis/keys.ts: `<prefix><family>:<value>`,
// JIDs normalized, no braces), with the TTLs its stores set, for migrate-keys' tests; and the checks that
// this release's own stores read them after the move.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Redis } from "ioredis";
import { pino } from "pino";
import { normalizeJid } from "../../lib/xmpp/jid.js";
import { IdempotencyStore } from "../../gateway/delivery/idempotency.js";
import { OfflineQueue, type QueuedRequest } from "../../gateway/delivery/offline-queue.js";
import type { StoredOutcome } from "../../gateway/delivery/stored-outcome.js";
import type { RedisStore } from "../../gateway/redis/client.js";
import { RedisDeviceRegistry } from "../../gateway/registry/redis-registry.js";

export const TTL_MS = 600_000;
/** A plain device JID, one with braces (moved), and one whose whole normalized form is in tag form (cannot be told from a new key). */
export const JIDS = {
  plain: "dev-2@devices.example.com/agent",
  braces: "de{v}3@devices.example.com/agent",
  ambiguous: "{x@devices.example.com/y}",
};
const IDEM_FINGERPRINT = "f".repeat(64);
const OUTCOME: StoredOutcome = { kind: "reply", statusCode: 201, headers: [["content-type", "text/plain"]], body: "bWFkZQ==" };

/** The old release's names (its keys.ts, less what is not persistent). */
export function oldKeys(prefix: string) {
  const key = (...parts: string[]) => prefix + parts.join(":");
  return {
    device: (id: string) => key("device", id),
    devices: () => key("devices"),
    legacy: (address: string) => key("legacy", address),
    idem: (deviceId: string, keyHash: string) => key("idem", deviceId, keyHash),
    request: (id: string) => key("request", id),
    queue: (jid: string) => key("queue", normalizeJid(jid)),
    queueBytes: (jid: string) => key("queuebytes", normalizeJid(jid)),
    queued: () => key("queued"),
    queuedBytes: () => key("queuedbytes"),
    shadow: () => key("shadow", "mismatches"),
    // Short-lived:
    exchange: (id: string) => key("corr", id),
    online: () => key("online"),
    seen: (jid: string) => key("seen", normalizeJid(jid)),
    inflight: (deviceId: string) => key("inflight", deviceId),
  };
}

/** IdempotencyStore's hash of a client's key. */
export function idemHash(key: string): string {
  return createHash("sha256").update(key).digest("base64url");
}

function queued(id: string, deviceId: string, deadline: number): QueuedRequest {
  return {
    id,
    deviceId,
    deadline,
    message: { method: "POST", resource: `/${id}`, headers: [["content-type", "text/plain"]], body: Buffer.from(id).toString("base64") },
  };
}

/** Writes a deployment's worth of old keys; answers the queued requests by JID, in queue order. */
export async function writeOldLayout(c: Redis, prefix: string, now = Date.now()): Promise<Record<string, string[]>> {
  const k = oldKeys(prefix);
  const record = (id: string, fields: Record<string, unknown>) => JSON.stringify({ id, ...fields, updatedAt: new Date(now).toISOString() });
  await c.set(k.device("dev-1"), record("dev-1", { transport: "http", httpTarget: "http://10.0.0.7:80", legacyAddress: "10.0.0.7:80" }));
  await c.set(k.device("dev-2"), record("dev-2", { transport: "xmpp", jid: JIDS.plain }));
  // Stored before ids were canonical: this release's start renames it (RedisDeviceRegistry.canonicalizeIds).
  await c.set(k.device("Dev-9"), record("Dev-9", { transport: "http", httpTarget: "http://10.0.0.9:80" }));
  await c.sadd(k.devices(), "dev-1", "dev-2", "Dev-9");
  await c.set(k.legacy("10.0.0.7:80"), "dev-1");
  await c.set(
    k.idem("dev-1", idemHash("key-1")),
    JSON.stringify({ state: "done", fingerprint: IDEM_FINGERPRINT, outcome: OUTCOME }),
    "PX",
    TTL_MS,
  );
  await c.set(k.request("r-1"), JSON.stringify({ state: "done", outcome: OUTCOME }), "PX", TTL_MS);
  await c.hset(k.shadow(), "dev-1", "3");

  const deadline = now + TTL_MS;
  const byJid: Record<string, string[]> = { [JIDS.plain]: ["q-1", "q-2"], [JIDS.braces]: ["q-3"], [JIDS.ambiguous]: ["q-4"] };
  let totalBytes = 0;
  for (const [jid, ids] of Object.entries(byJid)) {
    let bytes = 0;
    for (const id of ids) {
      // As the old ENQUEUE script did: the entry pushed, its bytes counted per device and in all.
      const entry = JSON.stringify(queued(id, jid === JIDS.plain ? "dev-2" : "dev-3", deadline));
      await c.rpush(k.queue(jid), entry);
      await c.zadd(k.queued(), deadline, `${id}:${Buffer.byteLength(entry)}`);
      bytes += Buffer.byteLength(entry);
    }
    await c.set(k.queueBytes(jid), bytes);
    await c.pexpireat(k.queue(jid), deadline);
    await c.pexpireat(k.queueBytes(jid), deadline);
    totalBytes += bytes;
  }
  await c.set(k.queuedBytes(), totalBytes);

  await c.set(k.exchange("abc"), "{}", "PX", 60_000);
  await c.zadd(k.online(), now + 60_000, JIDS.plain);
  await c.set(k.seen(JIDS.plain), String(now), "PX", 60_000);
  await c.zadd(k.inflight("dev-1"), now + 60_000, "slot-1");
  return byJid;
}

/** This release's stores read what was moved: the registry, a legacy address, a kept outcome, the queues. */
export async function assertMovedDataServes(store: RedisStore): Promise<void> {
  const registry = new RedisDeviceRegistry(store);
  assert.deepEqual(await registry.canonicalizeIds(), { renamed: ["Dev-9"], dropped: [] }, "the old spelling is renamed at start");
  assert.deepEqual(
    (await registry.list()).map((r) => r.id),
    ["dev-1", "dev-2", "dev-9"],
  );
  assert.equal((await registry.findByLegacyAddress("10.0.0.7:80"))?.id, "dev-1", "the legacy address resolves");

  const idem = new IdempotencyStore(store, TTL_MS);
  assert.deepEqual(await idem.begin("dev-1", "key-1", IDEM_FINGERPRINT, Date.now() + 10_000), { state: "done", outcome: OUTCOME });
  const idemTtl = await store.run((c) => c.pttl(store.keys.idempotency("dev-1", idemHash("key-1"))));
  assert.ok(idemTtl > 0 && idemTtl <= TTL_MS, `the Idempotency-Key record keeps its TTL (${idemTtl})`);
  const requestTtl = await store.run((c) => c.pttl(store.keys.asyncRequest("r-1")));
  assert.ok(requestTtl > 0 && requestTtl <= TTL_MS, `the asynchronous result keeps its TTL (${requestTtl})`);
  assert.deepEqual(await store.run((c) => c.hgetall(store.keys.shadowMismatches())), { "dev-1": "3" });

  const queueTtl = await store.run((c) => c.pttl(store.keys.offlineQueue(JIDS.plain)));
  assert.ok(queueTtl > 0 && queueTtl <= TTL_MS, `the queue keeps its TTL (${queueTtl})`);
  const totals = () =>
    store.run((c) => Promise.all([c.zcard(store.keys.offlineQueuedTotal()), c.get(store.keys.offlineQueuedBytesTotal())]));
  const [placesBefore] = await totals();
  assert.equal(placesBefore, 4, "the global bound holds every queued request's place");
  const queue = new OfflineQueue(store, pino({ level: "silent" }), {
    maxPerDevice: 10,
    maxBytesPerDevice: 1e6,
    maxTotal: 100,
    maxTotalBytes: 1e7,
  });
  const drained = async (jid: string) => {
    const ids: string[] = [];
    await queue.drain(
      jid,
      (item) => {
        ids.push(item.id);
        return Promise.resolve();
      },
      (item) => {
        ids.push(`expired ${item.id}`);
        return Promise.resolve();
      },
    );
    return ids;
  };
  assert.deepEqual(await drained(JIDS.plain), ["q-1", "q-2"], "queued requests dequeue in order");
  assert.deepEqual(await drained(JIDS.braces), ["q-3"], "a JID with braces keeps its queue");
  // The places were given back, member for member: the global set's format did not change.
  const [placesAfter, bytesAfter] = await totals();
  assert.equal(placesAfter, 1, "only the place of the request no dequeue reached is left");
  assert.ok(Number(bytesAfter) > 0);
}
