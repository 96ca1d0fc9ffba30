// The registry cache's own rules, on a registry whose reads the test answers by hand and a clock it moves:
// what is kept, for how long, what a change drops, and that a read under way when its device changes is
// never kept. Against real Redis and pub/sub: test/integration/registry-cache.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CachedRegistry } from "../../gateway/registry/cached-registry.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";

/** A registry whose every read waits until the test answers it. */
class HandRegistry {
  readonly reads: Array<{ id: string; answer: (record: DeviceRecord | undefined) => void; fail: (err: Error) => void }> = [];

  get(id: string): Promise<DeviceRecord | undefined> {
    return new Promise((answer, fail) => this.reads.push({ id, answer, fail }));
  }

  /** Answers the oldest read not yet answered. */
  answer(record: DeviceRecord | undefined): void {
    const read = this.reads.shift();
    assert.ok(read, "a read is waiting");
    read.answer(record);
  }
}

const rec = (id: string, transport: DeviceRecord["transport"] = "xmpp"): DeviceRecord => ({ id, transport });

function setup(maxAgeMs = 1000, maxEntries = 100) {
  const source = new HandRegistry();
  let t = 0;
  const cache = new CachedRegistry(source, { maxAgeMs, maxEntries }, () => t);
  return {
    source,
    cache,
    advance: (ms: number) => {
      t += ms;
    },
    /** A lookup whose read the test answers with `record` (there must be one). */
    miss: async (id: string, record: DeviceRecord | undefined) => {
      const got = cache.get(id);
      await Promise.resolve();
      source.answer(record);
      return got;
    },
  };
}

describe("registry cache", () => {
  it("while closed, reads every lookup and keeps nothing", async () => {
    const { source, cache, miss } = setup();
    assert.deepEqual(await miss("d1", rec("d1")), rec("d1"));
    assert.deepEqual(await miss("d1", rec("d1")), rec("d1"));
    assert.equal(cache.size, 0);
    assert.deepEqual(cache.lookups, { hit: 0, miss: 0, bypass: 2 });
    assert.equal(source.reads.length, 0);
  });

  it("once open, answers a device again from memory, an absent entry too", async () => {
    const { source, cache, miss } = setup();
    cache.open();
    assert.deepEqual(await miss("d1", rec("d1")), rec("d1"));
    assert.equal(await miss("nobody", undefined), undefined);
    assert.deepEqual(await cache.get("d1"), rec("d1"));
    assert.deepEqual(await cache.get("D1"), rec("d1"), "any spelling of the id");
    assert.equal(await cache.get("nobody"), undefined);
    assert.equal(source.reads.length, 0, "no read for the hits");
    assert.deepEqual(cache.lookups, { hit: 3, miss: 2, bypass: 0 });
  });

  it("reads an answer again once it is maxAgeMs old, counted from when its read was sent", async () => {
    const { source, cache, advance } = setup(1000);
    cache.open();
    const first = cache.get("d1");
    advance(400); // Redis took 400 ms to answer
    source.answer(rec("d1"));
    await first;
    advance(599);
    await cache.get("d1");
    assert.equal(source.reads.length, 0, "999 ms after the read was sent: still kept");
    advance(1);
    const again = cache.get("d1");
    assert.equal(source.reads.length, 1, "1000 ms after: read again");
    source.answer(rec("d1", "http"));
    assert.equal((await again)?.transport, "http");
  });

  it("drops a device on its change, in any spelling; the others stay", async () => {
    const { source, cache, miss } = setup();
    cache.open();
    await miss("d1", rec("d1"));
    await miss("d2", rec("d2"));
    cache.drop("D1");
    const got = cache.get("d1");
    assert.equal(source.reads.length, 1);
    source.answer(rec("d1", "http"));
    assert.equal((await got)?.transport, "http");
    await cache.get("d2");
    assert.equal(source.reads.length, 0);
  });

  it("does not keep a read that was under way when its device changed, nor let later lookups join it", async () => {
    const { source, cache } = setup();
    cache.open();
    const before = cache.get("d1");
    const joined = cache.get("d1");
    assert.equal(source.reads.length, 1, "concurrent lookups share one read");
    cache.drop("d1"); // the notice came before Redis' answer, which may predate the change
    const after = cache.get("d1");
    assert.equal(source.reads.length, 2, "a lookup after the change sends a read of its own");
    source.answer(rec("d1")); // the old answer
    source.answer(rec("d1", "http"));
    assert.equal((await before)?.transport, "xmpp");
    assert.equal((await joined)?.transport, "xmpp");
    assert.equal((await after)?.transport, "http");
    assert.equal((await cache.get("d1"))?.transport, "http", "the read sent after the change is the one kept");
    assert.equal(source.reads.length, 0);
  });

  it("does not keep a read under way when everything is dropped, or the cache closed and opened again", async () => {
    for (const change of [(c: CachedRegistry) => c.dropAll(), (c: CachedRegistry) => (c.close(), c.open())]) {
      const { source, cache } = setup();
      cache.open();
      const under = cache.get("d1");
      change(cache);
      source.answer(rec("d1"));
      await under;
      void cache.get("d1");
      assert.equal(source.reads.length, 1, "read again");
    }
  });

  it("closing drops everything and reads every lookup until opened again", async () => {
    const { source, cache, miss } = setup();
    cache.open();
    await miss("d1", rec("d1"));
    cache.close();
    assert.equal(cache.size, 0);
    await miss("d1", rec("d1"));
    assert.equal(cache.lookups.bypass, 1);
    cache.open();
    await miss("d1", rec("d1"));
    await cache.get("d1");
    assert.equal(source.reads.length, 0);
  });

  it("keeps nothing from a read that failed: every lookup that shared it fails, the next reads again", async () => {
    const { source, cache } = setup();
    cache.open();
    const a = cache.get("d1");
    const b = cache.get("d1");
    source.reads.shift()?.fail(new Error("store unavailable"));
    await assert.rejects(a, /store unavailable/);
    await assert.rejects(b, /store unavailable/);
    void cache.get("d1");
    assert.equal(source.reads.length, 1);
  });

  it("holds at most maxEntries answers: expired ones go first, else the oldest", async () => {
    const { source, cache, miss, advance } = setup(1000, 3);
    cache.open();
    await miss("d1", rec("d1"));
    advance(600);
    await miss("d2", rec("d2"));
    await miss("d3", rec("d3"));
    advance(500); // d1 has expired, d2 and d3 have not
    await miss("d4", rec("d4"));
    assert.equal(cache.size, 3);
    await miss("d5", rec("d5")); // none expired: the oldest (d2) goes
    assert.equal(cache.size, 3);
    await cache.get("d3");
    await cache.get("d4");
    await cache.get("d5");
    assert.equal(source.reads.length, 0, "d3, d4, d5 kept");
    void cache.get("d2");
    assert.equal(source.reads.length, 1, "d2 was dropped");
  });

  it("with maxAgeMs 0 never opens: every lookup reads", async () => {
    const { source, cache, miss } = setup(0);
    cache.open();
    assert.equal(cache.isOpen, false);
    await miss("d1", rec("d1"));
    void cache.get("d1");
    assert.equal(source.reads.length, 1);
  });

  it("hands out kept answers frozen, so no caller can change what the next one gets", async () => {
    const { cache, miss } = setup();
    cache.open();
    await miss("d1", rec("d1"));
    const kept = await cache.get("d1");
    assert.ok(kept && Object.isFrozen(kept));
  });
});
