// Presence in a real Redis: a device that vanishes without a word ages out; one that says goodbye is
// offline until it is back; JIDs compare as XMPP compares them.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { PresenceStore } from "../../gateway/presence/presence-store.js";
import { RedisStore } from "../../gateway/redis/client.js";

let server: RedisServer;
let redis: RedisStore;
let presence: PresenceStore;
const TTL = { onlineTtlMs: 1000, offlineTtlMs: 5000 };

before(async () => {
  server = await startRedis();
  redis = new RedisStore({ url: server.url, keyPrefix: "p:", commandTimeoutMs: 1000 }, { logger: pino({ level: "silent" }) });
  await redis.start();
  presence = new PresenceStore(redis, TTL);
});
after(async () => {
  await redis.stop();
  await server.stop();
});

it("ages out a device that went away without a word", async () => {
  const now = 1_000_000;
  await presence.available("quiet@localhost/agent", now);
  assert.equal(await presence.state("quiet@localhost/agent", now + 999), "online");
  assert.equal(await presence.countOnline(now + 999), 1);
  assert.equal(await presence.state("quiet@localhost/agent", now + 1001), "unknown");
  assert.equal(await presence.countOnline(now + 1001), 0, "expired entries are not counted, and are removed");
});

it("keeps a device that said goodbye offline until it announces itself again", async () => {
  const now = Date.now();
  await presence.available("Leaver@LocalHost/agent", now);
  await presence.unavailable("leaver@localhost/agent", now);
  assert.equal(await presence.state("leaver@localhost/agent", now), "offline");
  await presence.available("leaver@localhost/agent", now);
  assert.equal(await presence.state("LEAVER@localhost/agent", now), "online");
  assert.equal(await presence.state("leaver@localhost/Agent", now), "unknown", "the resource is compared exactly");
});

it("counts the online devices of every bucket", async () => {
  const now = Date.now();
  const jids = Array.from({ length: 40 }, (_, i) => `many-${i}@localhost/agent`);
  for (const jid of jids) await presence.available(jid, now);
  assert.ok(new Set(jids.map((j) => redis.keys.online(j))).size > 1, "the JIDs are in several buckets");
  const before = await presence.countOnline(now);
  await presence.unavailable(jids[0] as string, now);
  assert.equal(await presence.countOnline(now), before - 1);
  assert.ok(before >= jids.length);
});

it("an announcement cut short after its online step reads as online", async () => {
  // `available` writes the bucket first: an instance dying before the JID's own keys leaves a stale
  // offline mark next to a current presence, and the presence wins.
  const now = Date.now();
  const jid = "halfway@localhost/agent";
  await presence.unavailable(jid, now);
  await redis.run((c) => c.zadd(redis.keys.online(jid), now + TTL.onlineTtlMs, jid));
  assert.equal(await presence.state(jid, now), "online");
});
