// Redis Cluster hash slots, and the guard every script call goes through (RedisStore.script): known values
// are those `CLUSTER KEYSLOT` answers (Redis Cluster specification, "Hash tags").
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pino } from "pino";
import { RedisStore } from "../../gateway/redis/client.js";
import { assertOneSlot, keySlot } from "../../gateway/redis/slots.js";
import { isGatewayError } from "../../gateway/errors.js";

describe("keySlot", () => {
  it("is CRC16 of the key modulo 16384", () => {
    assert.equal(keySlot("foo"), 12182);
    assert.equal(keySlot("bar"), 5061);
    assert.equal(keySlot(""), 0);
    assert.equal(keySlot("é"), 10180, "of the key's UTF-8 bytes");
  });

  it("hashes only a non-empty hash tag, the first one", () => {
    assert.equal(keySlot("{user1000}.following"), keySlot("{user1000}.followers"));
    assert.equal(keySlot("{user1000}.following"), keySlot("user1000"));
    assert.equal(keySlot("foo{}{bar}"), 8363, "an empty first tag: the whole key is hashed");
    assert.notEqual(keySlot("foo{}{bar}"), keySlot("bar"));
    assert.equal(keySlot("foo{{bar}}zap"), keySlot("{bar"));
    assert.equal(keySlot("foo{bar}{zap}"), keySlot("bar"));
    assert.equal(keySlot("{}"), 15257);
    assert.equal(keySlot("x{y}z}"), 12222);
    assert.equal(keySlot("日本{語}"), 6482);
  });
});

describe("assertOneSlot", () => {
  it("lets keys of one slot pass", () => {
    assertOneSlot("s", []);
    assertOneSlot("s", ["foo"]);
    assertOneSlot("s", ["gw:queue:{a@x}", "gw:queuebytes:{a@x}"]);
  });

  it("throws a plain Error naming the script and the keys when they span slots", () => {
    assert.throws(
      () => assertOneSlot("enqueueOffline", ["gw:queue:{a@x}", "gw:queued"]),
      (err: unknown) =>
        err instanceof Error && err.constructor === Error && /enqueueOffline/.test(err.message) && /gw:queued → \d+/.test(err.message),
    );
  });
});

describe("RedisStore.script", () => {
  it("refuses a call whose keys span slots before sending it, and sends one whose keys share a tag", async () => {
    // Never connected: a call that is sent fails as GW_STORE_UNAVAILABLE (offline queue off).
    const redis = new RedisStore(
      { url: "redis://127.0.0.1:1", keyPrefix: "t:", commandTimeoutMs: 100 },
      { logger: pino({ level: "silent" }) },
    );
    try {
      const twoKeys = redis.script<number>("twoKeys", 2, "return 1");
      assert.throws(
        () => twoKeys("t:a:{x}", "t:b:{y}", "arg"),
        (err: unknown) => err instanceof Error && !isGatewayError(err) && /twoKeys/.test(err.message),
      );
      await assert.rejects(
        twoKeys("t:a:{x}", "t:b:{x}", "t:c:{y}"),
        (err: unknown) => isGatewayError(err) && err.code === "GW_STORE_UNAVAILABLE",
        "ARGV is not checked",
      );
    } finally {
      await redis.stop();
    }
  });
});

describe("assertOneSlot without hashing", () => {
  it("lets keys of one tag pass, and still tells keys of different tags apart by their slots", () => {
    assertOneSlot("s", ["gw:inflight:{dev-1}", "gw:slotfree:{dev-1}"]);
    // Two different tags of one slot pass (the slot decides, not the text).
    const [a, b] = sameSlotPair();
    assertOneSlot("s", [`gw:x:{${a}}`, `gw:y:{${b}}`]);
    assert.throws(() => assertOneSlot("s", ["gw:inflight:{dev-1}", "gw:slotfree:{dev-2}"]), /more than one hash slot/);
    // An empty tag is no tag: the whole key is hashed, and two such keys differ.
    assert.throws(() => assertOneSlot("s", ["gw:a{}{dev-1}", "gw:b{}{dev-1}"]), /more than one hash slot/);
  });
});

/** Two different short strings of one hash slot, found by search. */
function sameSlotPair(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const s = `k${i}`;
    const slot = keySlot(s);
    const other = seen.get(slot);
    if (other !== undefined) return [other, s];
    seen.set(slot, s);
  }
}
