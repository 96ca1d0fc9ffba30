// The key and channel names are shared by every instance of a deployment: an instance of another version
// must find the same keys during a rolling upgrade, so a rename is a breaking change, caught here.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RedisKeys } from "../../gateway/redis/keys.js";

describe("Redis key names", () => {
  const keys = new RedisKeys("gw:");
  const jid = "Dev-17@Devices.Example.com/agent";

  it("are stable, under the prefix", () => {
    assert.deepEqual(
      {
        exchange: keys.exchange("abc"),
        exchangesTo: keys.exchangesTo(jid),
        streamOwner: keys.streamOwner(jid, "s1"),
        parkedChunks: keys.parkedChunks(jid, "s1"),
        parkedBytes: keys.parkedBytes(jid),
        replyChannel: keys.replyChannel("gw-a"),
        departures: keys.departures(),
        clientRate: keys.clientRate("10.0.0.1"),
        deviceSlots: keys.deviceSlots("dev-17"),
        slotFreed: keys.slotFreed("dev-17"),
        idempotency: keys.idempotency("dev-17", "h"),
        asyncRequest: keys.asyncRequest("r1"),
        offlineQueue: keys.offlineQueue(jid),
        offlineQueueBytes: keys.offlineQueueBytes(jid),
        offlineQueuedTotal: keys.offlineQueuedTotal(),
        offlineQueuedBytesTotal: keys.offlineQueuedBytesTotal(),
        offlineQueueDrain: keys.offlineQueueDrain(jid),
        shadowMismatches: keys.shadowMismatches(),
        online: keys.online(),
        seen: keys.seen(jid),
        offline: keys.offline(jid),
        device: keys.device("dev-17"),
        devices: keys.devices(),
        legacyIndexPrefix: keys.legacyIndexPrefix(),
      },
      {
        exchange: "gw:corr:abc",
        exchangesTo: "gw:exchanges:dev-17@devices.example.com/agent",
        streamOwner: "gw:stream:dev-17@devices.example.com/agent|s1",
        parkedChunks: "gw:parked:dev-17@devices.example.com/agent|s1",
        parkedBytes: "gw:parkedbytes:dev-17@devices.example.com/agent",
        replyChannel: "gw:reply:gw-a",
        departures: "gw:departed",
        clientRate: "gw:rate:10.0.0.1",
        deviceSlots: "gw:inflight:dev-17",
        slotFreed: "gw:slotfree:dev-17",
        idempotency: "gw:idem:dev-17:h",
        asyncRequest: "gw:request:r1",
        offlineQueue: "gw:queue:dev-17@devices.example.com/agent",
        offlineQueueBytes: "gw:queuebytes:dev-17@devices.example.com/agent",
        offlineQueuedTotal: "gw:queued",
        offlineQueuedBytesTotal: "gw:queuedbytes",
        offlineQueueDrain: "gw:draining:dev-17@devices.example.com/agent",
        shadowMismatches: "gw:shadow:mismatches",
        online: "gw:online",
        seen: "gw:seen:dev-17@devices.example.com/agent",
        offline: "gw:offline:dev-17@devices.example.com/agent",
        device: "gw:device:dev-17",
        devices: "gw:devices",
        legacyIndexPrefix: "gw:legacy:",
      },
    );
  });

  it("give one key to every spelling of a JID", () => {
    assert.equal(keys.exchangesTo(jid), keys.exchangesTo(jid.toLowerCase()));
    assert.equal(keys.offlineQueue(jid), keys.offlineQueue("dev-17@devices.example.com/agent"));
  });
});
