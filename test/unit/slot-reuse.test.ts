// SlotReuse's logic against an in-memory slot set: which requests are lent a parked slot (within the window,
// a deadline that fits, below the device's maxInFlight), and when a parked slot goes back (its linger, or
// the end of its window for a quiet device's; a request it does not fit, stop). Against real Redis and instances: test/e2e/slot-reuse.test.ts.
import assert from "node:assert/strict";
import { once, EventEmitter } from "node:events";
import { describe, it } from "node:test";
import { GatewayError } from "../../gateway/errors.js";
import { SLOT_GRACE_MS, takenSlot, type Renewal, type SlotAttempt } from "../../gateway/limits/device-limiter.js";
import { SlotReuse } from "../../gateway/limits/slot-reuse.js";

/**
 * The device's set in Redis, in memory: what was taken, with which lifetime, and every give-back.
 * `reportsInUse`: a take tells how many of the device's slots are in use with it, as DeviceLimiter's does.
 */
/**
 * A device's set, in memory. `renews`: the slots it hands out can be renewed, and it answers renewals so
 * (true: every one renewed; false: none, as with the device's every slot taken); without, no slot is renewable.
 */
function fakeSet({ reportsInUse = false, renews }: { reportsInUse?: boolean; renews?: boolean } = {}) {
  const events = new EventEmitter();
  const held = new Map<string, number>();
  const lifetimes: number[] = [];
  const renewals: Renewal[][] = [];
  let takes = 0;
  let givenBack = 0;
  return {
    events,
    held,
    lifetimes,
    get takes() {
      return takes;
    },
    get givenBack() {
      return givenBack;
    },
    renewals,
    source: {
      renew(batch: readonly Renewal[]): Promise<number[]> {
        renewals.push([...batch]);
        events.emit("renewal");
        return Promise.resolve(renews ? [] : batch.map((_, i) => i));
      },
      // Give-backs here are done at once: nothing waits to be sent.
      afterReleases: (wakeUp: () => void) => wakeUp(),
      channel: (deviceId: string) => `slotfree:${deviceId}`,
      busy: (message: string) => new GatewayError("GW_DEVICE_BUSY", { message, retryAfterS: 1 }),
      tryAcquire(deviceId: string, max: number, timeoutMs: number, onReleased?: () => void): Promise<SlotAttempt> {
        const n = held.get(deviceId) ?? 0;
        if (n >= max) return Promise.resolve({ taken: false, retryInMs: 1000 });
        held.set(deviceId, n + 1);
        takes++;
        lifetimes.push(timeoutMs);
        return Promise.resolve(
          takenSlot(
            () => {
              held.set(deviceId, (held.get(deviceId) ?? 1) - 1);
              givenBack++;
              onReleased?.();
              events.emit("givenBack", deviceId);
            },
            reportsInUse ? n + 1 : undefined,
            renews === undefined ? undefined : { deviceId, id: `slot-${takes}` },
          ),
        );
      },
    },
  };
}

async function take(reuse: SlotReuse, deviceId: string, max: number, timeoutMs: number, onReleased?: () => void) {
  const attempt = await reuse.tryAcquire(deviceId, max, timeoutMs, onReleased);
  assert.ok(attempt.taken, "a slot");
  return attempt.release;
}

/**
 * The set's next `event`. SlotReuse's timers (the sweep, the renewals) do not hold the process open (unref):
 * an interval of the test's own does, while it waits.
 */
async function next(set: { events: EventEmitter }, event: "givenBack" | "renewal"): Promise<void> {
  const alive = setInterval(() => undefined, 1000);
  try {
    await once(set.events, event);
  } finally {
    clearInterval(alive);
  }
}

describe("SlotReuse", () => {
  it("a slot given back is lent to the device's next request without a take; the set holds one slot throughout", async () => {
    const set = fakeSet();
    const reuse = new SlotReuse(set.source, 1000);
    for (let i = 0; i < 5; i++) (await take(reuse, "d", 4, 5000))();
    assert.deepEqual([set.takes, reuse.counts], [1, { redis: 1, reused: 4 }]);
    assert.equal(set.held.get("d"), 1, "parked, still counted in the set");
    assert.equal(set.givenBack, 0);
    await reuse.stop();
  });

  it("takes a slot for the request's deadline plus the window, so the request lent it later still ends before it", async () => {
    const set = fakeSet();
    const reuse = new SlotReuse(set.source, 1000);
    (await take(reuse, "d", 4, 5000))();
    assert.deepEqual(set.lifetimes, [6000]);
    await reuse.stop();
  });

  it("a request whose deadline outlives the parked slot takes its own, and the parked one goes back first", async () => {
    const set = fakeSet();
    const reuse = new SlotReuse(set.source, 1000);
    (await take(reuse, "d", 4, 1000))(); // in Redis for about 1000 + 1000 + grace
    const release = await take(reuse, "d", 4, 1000 + 1000 + SLOT_GRACE_MS);
    assert.deepEqual([set.takes, set.givenBack, set.held.get("d")], [2, 1, 1]);
    release();
    await reuse.stop();
  });

  it("different devices never share a slot", async () => {
    const set = fakeSet();
    const reuse = new SlotReuse(set.source, 1000);
    (await take(reuse, "a", 4, 1000))();
    (await take(reuse, "b", 4, 1000))();
    assert.deepEqual([set.takes, reuse.counts.reused], [2, 0]);
    await reuse.stop();
  });

  it("lends nothing while the device already holds its maxInFlight here (lowered meanwhile): the parked slot goes back", async () => {
    const set = fakeSet();
    const reuse = new SlotReuse(set.source, 1000);
    const r1 = await take(reuse, "d", 4, 1000);
    const r2 = await take(reuse, "d", 4, 1000);
    r2(); // parked; r1 still held
    // maxInFlight now 1: r1 alone fills it, so the parked slot is not lent, and the set answers full.
    const attempt = await reuse.tryAcquire("d", 1, 1000);
    assert.equal(attempt.taken, false);
    assert.deepEqual([set.givenBack, set.held.get("d"), reuse.parkedCount], [1, 1, 0]);
    r1();
    await reuse.stop();
  });

  it("a parked slot goes back to Redis after the linger, and the last holder's wake-up is told", async () => {
    const set = fakeSet();
    const reuse = new SlotReuse(set.source, 60_000);
    let woken = 0;
    (await take(reuse, "d", 4, 1000, () => woken++))();
    assert.equal(woken, 1, "woken at the park: a waiter here is lent the slot");
    await next(set, "givenBack");
    assert.deepEqual([set.held.get("d"), reuse.parkedCount, woken], [0, 0, 2]);
    await reuse.stop();
  });

  it("a quiet device's slot (half of its slots in use or fewer) stays parked past the linger, and is lent", async () => {
    const set = fakeSet({ reportsInUse: true });
    const reuse = new SlotReuse(set.source, 60_000);
    (await take(reuse, "d", 2, 1000))(); // 1 of 2 in use
    (await take(reuse, "busy", 1, 1000))(); // 1 of 1: more than half
    // The busy device's slot goes back at its linger; the sweep that gives it back keeps the quiet one.
    await next(set, "givenBack");
    assert.deepEqual([set.held.get("busy"), set.held.get("d"), reuse.parkedCount], [0, 1, 1]);
    (await take(reuse, "d", 4, 1000))();
    assert.deepEqual([set.takes, reuse.counts.reused], [2, 1], "lent, not taken again");
    await reuse.stop();
  });

  it("a quiet device's slot goes back when its window ends, not before", async () => {
    const set = fakeSet({ reportsInUse: true });
    const windowMs = 60;
    const reuse = new SlotReuse(set.source, windowMs);
    const start = performance.now();
    (await take(reuse, "d", 16, 1000))();
    await next(set, "givenBack");
    assert.ok(performance.now() - start >= windowMs, "not before the window's end");
    assert.equal(reuse.parkedCount, 0);
    await reuse.stop();
  });

  it("a slot past its window is given back when its request ends, not parked, and its holder woken once, by the give-back", async () => {
    const set = fakeSet();
    const reuse = new SlotReuse(set.source, 1);
    const woken: number[] = [];
    const release = await take(reuse, "d", 4, 1000, () => woken.push(set.givenBack));
    const start = performance.now();
    while (performance.now() - start < 2); // past the 1 ms window
    release();
    assert.deepEqual([set.givenBack, reuse.parkedCount], [1, 0]);
    assert.deepEqual(woken, [1], "woken after the give-back, not also before it");
    await reuse.stop();
  });

  it("a slot that keeps being lent is renewed before its window ends, and lent past the window it was taken for", async () => {
    const set = fakeSet({ renews: true });
    const windowMs = 80;
    const reuse = new SlotReuse(set.source, windowMs);
    const start = performance.now();
    let release = await take(reuse, "d", 4, 1000);
    await next(set, "renewal");
    assert.ok(performance.now() - start >= windowMs / 2 - 1, "renewed with half its window left, not sooner");
    release();
    release = await take(reuse, "d", 4, 1000); // lent again: used since the renewal
    await next(set, "renewal");
    assert.ok(performance.now() - start > windowMs, "past the window it was taken for");
    release();
    (await take(reuse, "d", 4, 1000))();
    assert.deepEqual([set.takes, reuse.counts.reused], [1, 2], "taken once, lent twice, the last time past its first window");
    assert.deepEqual(
      set.renewals.map((batch) => batch.map((r) => [r.slot.id, r.lifetimeMs, r.maxInFlight])),
      [[["slot-1", 1000 + windowMs, 4]], [["slot-1", 1000 + windowMs, 4]]],
      "one slot a renewal, with the lifetime it was taken for",
    );
    await reuse.stop();
  });

  it("a slot whose renewal is refused (its device's every slot taken) goes back when its window ends", async () => {
    const set = fakeSet({ renews: false });
    const windowMs = 40;
    const reuse = new SlotReuse(set.source, windowMs);
    const start = performance.now();
    const release = await take(reuse, "d", 4, 1000);
    await next(set, "renewal");
    while (performance.now() - start < windowMs); // past the window it was taken for
    release();
    assert.deepEqual([set.renewals.length, set.givenBack, reuse.parkedCount], [1, 1, 0], "given back, not parked");
    await reuse.stop();
  });

  it("stop gives every parked slot back, and later releases go straight back", async () => {
    const set = fakeSet();
    const reuse = new SlotReuse(set.source, 60_000);
    const held = await take(reuse, "a", 4, 1000);
    (await take(reuse, "b", 4, 1000))();
    (await take(reuse, "c", 4, 1000))();
    assert.equal(reuse.parkedCount, 2);
    await reuse.stop();
    assert.deepEqual([set.givenBack, reuse.parkedCount], [2, 0]);
    held();
    assert.deepEqual([set.givenBack, reuse.parkedCount], [3, 0]);
  });

  it("window 0: every request takes and gives back its own slot", async () => {
    const set = fakeSet();
    const reuse = new SlotReuse(set.source, 0);
    for (let i = 0; i < 3; i++) (await take(reuse, "d", 4, 1000))();
    assert.deepEqual([set.takes, set.givenBack, set.lifetimes], [3, 3, [1000, 1000, 1000]]);
    await reuse.stop();
  });
});
