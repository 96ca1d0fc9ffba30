// The key and channel names are shared by every instance of a deployment: an instance of another version
// must find the same keys during a rolling upgrade, so a rename is a breaking change, caught here.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ONLINE_BUCKETS, RedisKeys, tag } from "../../gateway/redis/keys.js";
import { keySlot } from "../../gateway/redis/slots.js";

describe("Redis key names", () => {
  const keys = new RedisKeys("gw:");
  const jid = "Dev-17@Devices.Example.com/agent";

  it("are stable, under the prefix", () => {
    assert.deepEqual(
      {
        exchange: keys.exchange(jid, "abc"),
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
        online: keys.online(jid),
        seen: keys.seen(jid),
        offline: keys.offline(jid),
        device: keys.device("dev-17"),
        devices: keys.devices(),
        deviceIds: keys.deviceIds(),
        transportCounts: keys.transportCounts(),
        legacyIndex: keys.legacyIndex("10.0.0.1:80"),
        registryChanges: keys.registryChanges(),
        wave: keys.wave("w1"),
        waveDevices: keys.waveDevices("w1"),
        waves: keys.waves(),
        wavesWatching: keys.wavesWatching(),
        waveCounts: keys.waveCounts(),
        waveSequence: keys.waveSequence(),
      },
      {
        exchange: "gw:corr:{dev-17@devices.example.com/agent}|abc",
        exchangesTo: "gw:exchanges:{dev-17@devices.example.com/agent}",
        streamOwner: "gw:stream:{dev-17@devices.example.com/agent}|s1",
        parkedChunks: "gw:parked:{dev-17@devices.example.com/agent}|s1",
        parkedBytes: "gw:parkedbytes:{dev-17@devices.example.com/agent}",
        replyChannel: "gw:reply:{gw-a}",
        departures: "gw:departed",
        clientRate: "gw:rate:10.0.0.1",
        deviceSlots: "gw:inflight:{dev-17}",
        slotFreed: "gw:slotfree:{dev-17}",
        idempotency: "gw:idem:{dev-17}:h",
        asyncRequest: "gw:request:r1",
        offlineQueue: "gw:queue:{dev-17@devices.example.com/agent}",
        offlineQueueBytes: "gw:queuebytes:{dev-17@devices.example.com/agent}",
        offlineQueuedTotal: "gw:queued:{total}",
        offlineQueuedBytesTotal: "gw:queuedbytes:{total}",
        offlineQueueDrain: "gw:draining:{dev-17@devices.example.com/agent}",
        shadowMismatches: "gw:shadow:mismatches",
        online: `gw:online:${keySlot("dev-17@devices.example.com/agent") % ONLINE_BUCKETS}`,
        seen: "gw:seen:{dev-17@devices.example.com/agent}",
        offline: "gw:offline:{dev-17@devices.example.com/agent}",
        device: "gw:device:{dev-17}",
        devices: "gw:devices",
        deviceIds: "gw:deviceids",
        transportCounts: "gw:transportcounts",
        legacyIndex: "gw:legacy:{10.0.0.1:80}",
        registryChanges: "gw:registrychanged",
        wave: "gw:wave:{w1}",
        waveDevices: "gw:wavedevices:{w1}",
        waves: "gw:waves",
        wavesWatching: "gw:waveswatching",
        waveCounts: "gw:wavecounts",
        waveSequence: "gw:waveseq",
      },
    );
  });

  it("give one key to every spelling of a JID", () => {
    assert.equal(keys.exchangesTo(jid), keys.exchangesTo(jid.toLowerCase()));
    assert.equal(keys.exchange(jid, "abc"), keys.exchange(jid.toLowerCase(), "abc"));
    assert.equal(keys.offlineQueue(jid), keys.offlineQueue("dev-17@devices.example.com/agent"));
  });
});

describe("Redis key hash tags", () => {
  const keys = new RedisKeys("gw:");
  const sameSlot = (...names: string[]) => assert.equal(new Set(names.map(keySlot)).size, 1, names.join(", "));

  it("put every key of one script or MULTI in one slot", () => {
    for (const jid of ["dev-17@devices.example.com/agent", "a}b@x/y", "}x@y", "{x}@y", "\\}@y", "", "}", "{}"]) {
      // CorrelationStore's put and remove, StreamRoutes' route and claim, the offline queue's device step and
      // drain lock, presence's MULTI.
      sameSlot(
        keys.exchange(jid, "abc"),
        keys.streamOwner(jid, "s1"),
        keys.parkedChunks(jid, "s1"),
        keys.exchangesTo(jid),
        keys.parkedBytes(jid),
      );
      sameSlot(keys.offlineQueue(jid), keys.offlineQueueBytes(jid), keys.offlineQueueDrain(jid), keys.seen(jid), keys.offline(jid));
    }
    // DeviceLimiter's release publishes from inside its script: the channel is in the script's slot.
    sameSlot(keys.deviceSlots("dev-17"), keys.slotFreed("dev-17"), keys.idempotency("dev-17", "h"), keys.device("dev-17"));
    sameSlot(keys.offlineQueuedTotal(), keys.offlineQueuedBytesTotal());
    sameSlot(keys.wave("w1"), keys.waveDevices("w1"));
  });

  it("spread JIDs and devices over slots", () => {
    const slots = new Set(Array.from({ length: 50 }, (_, i) => keySlot(keys.offlineQueue(`dev-${i}@x/agent`))));
    assert.ok(slots.size > 40, `${slots.size} slots for 50 JIDs`);
    const buckets = new Set(Array.from({ length: 200 }, (_, i) => keys.online(`dev-${i}@x/agent`)));
    assert.equal(buckets.size, ONLINE_BUCKETS, "every presence bucket is used");
    assert.deepEqual(new Set(keys.onlineBuckets()), buckets);
  });

  it("never leave a tag empty, and keep the tags of different values apart", () => {
    assert.equal(tag("dev-17"), "{dev-17}");
    assert.equal(tag(""), "{\\}");
    assert.equal(tag("}x"), "{\\}x}");
    assert.equal(tag("\\}x"), "{\\\\}x}");
    const values = ["", "\\", "}", "\\}", "}}", "x", "\\x"];
    assert.equal(new Set(values.map(tag)).size, values.length);
    for (const v of values) assert.notEqual(keySlot(`gw:queue:${tag(v)}`), -1);
  });
});
