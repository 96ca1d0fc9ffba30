// DeviceQueue's logic against an in-memory slot set: FIFO per device, bounds, deadline, hang-up, and the
// three ways a waiter is woken (a local release, another instance's notice, the earliest slot's deadline).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { GatewayError } from "../../gateway/errors.js";
import { takenSlot, type SlotAttempt } from "../../gateway/limits/device-limiter.js";
import { DeviceQueue, type HeldSlot } from "../../gateway/limits/device-queue.js";
import type { SlotFreedNotices } from "../../gateway/limits/slot-notices.js";
import type { Metrics } from "../../gateway/metrics/metrics.js";

/** The slot set of one or more devices, in memory; `retryInMs` is what a full set answers. */
function fakeSlots(retryInMs = 60_000) {
  const held = new Map<string, number>();
  let attempts = 0;
  /** Run once an attempt was decided, before its answer arrives (a release on its way meanwhile). */
  let afterDecision: (() => void) | undefined;
  return {
    held,
    get attempts() {
      return attempts;
    },
    set afterDecision(fn: (() => void) | undefined) {
      afterDecision = fn;
    },
    /** A slot freed elsewhere: the set shrinks, no local wake. */
    freeElsewhere(deviceId: string) {
      held.set(deviceId, (held.get(deviceId) ?? 1) - 1);
    },
    limiter: {
      channel: (deviceId: string) => `slotfree:${deviceId}`,
      busy: (message: string) => new GatewayError("GW_DEVICE_BUSY", { message, retryAfterS: 1 }),
      async tryAcquire(deviceId: string, max: number, _timeoutMs: number, onReleased?: () => void): Promise<SlotAttempt> {
        attempts++;
        await Promise.resolve();
        const n = held.get(deviceId) ?? 0;
        const full = n >= max;
        if (!full) held.set(deviceId, n + 1);
        const fn = afterDecision;
        afterDecision = undefined;
        fn?.();
        if (full) return { taken: false, retryInMs };
        return takenSlot(() => {
          held.set(deviceId, (held.get(deviceId) ?? 1) - 1);
          onReleased?.();
        });
      },
    },
  };
}

/** `subscribed: false`: the subscription never completes (its catch-up attempt never runs). */
function fakeNotices(subscribed = true) {
  const listeners = new Map<string, () => void>();
  const notices: SlotFreedNotices & { notify(channel: string): void; listening(channel: string): boolean } = {
    listen(channel, onFreed) {
      listeners.set(channel, onFreed);
      return { ready: subscribed ? Promise.resolve() : new Promise<void>(() => undefined), stop: () => listeners.delete(channel) };
    },
    notify: (channel) => listeners.get(channel)?.(),
    listening: (channel) => listeners.has(channel),
  };
  return notices;
}

function setup(opts: { maxPerDevice?: number; maxTotal?: number; retryInMs?: number; subscribed?: boolean } = {}) {
  const slots = fakeSlots(opts.retryInMs);
  const notices = fakeNotices(opts.subscribed);
  const refusals: string[] = [];
  const metrics = {
    deviceQueueRefusals: { inc: (labels: { bound: string }, n = 1) => n > 0 && refusals.push(labels.bound) },
  } as unknown as Pick<Metrics, "deviceQueueRefusals">;
  const queue = new DeviceQueue(
    { limiter: slots.limiter, notices, metrics },
    { maxPerDevice: opts.maxPerDevice ?? 10, maxTotal: opts.maxTotal ?? 100 },
  );
  const acquire = (deviceId: string, max: number, extra: { timeoutMs?: number; signal?: AbortSignal } = {}) =>
    queue.acquire(deviceId, max, { timeoutMs: extra.timeoutMs ?? 60_000, signal: extra.signal });
  return { slots, notices, refusals, queue, acquire };
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "resolved";
  } catch (err) {
    return (err as GatewayError).code;
  }
}

describe("DeviceQueue", () => {
  it("lets requests beyond maxInFlight wait and serves them first come, first served, as slots are released here", async () => {
    const { queue, acquire } = setup();
    const first = await acquire("d", 1);
    const order: string[] = [];
    const waiting = ["b", "c", "d"].map((name) => acquire("d", 1).then((slot) => (order.push(name), slot)));
    await pollUntil("three waiting", () => queue.size === 3, { timeoutMs: 2000 });
    first.release();
    let slot: HeldSlot = await (waiting[0] as Promise<HeldSlot>);
    for (const next of waiting.slice(1)) {
      slot.release();
      slot = await next;
    }
    slot.release();
    assert.deepEqual(order, ["b", "c", "d"]);
    assert.equal(queue.size, 0);
    assert.equal(queue.devices, 0, "no line kept for a device nobody waits for");
  });

  it("a newcomer does not overtake those waiting: it joins the end without trying", async () => {
    const { slots, queue, acquire } = setup();
    const first = await acquire("d", 1);
    const waiter = acquire("d", 1);
    await pollUntil("one waiting", () => queue.size === 1, { timeoutMs: 2000 });
    slots.freeElsewhere("d"); // a slot free, but nobody told this instance yet
    const before = slots.attempts;
    const newcomer = acquire("d", 1);
    assert.equal(queue.size, 2);
    assert.equal(slots.attempts, before, "the newcomer made no attempt of its own");
    first.release(); // the local wake: the head goes first
    (await waiter).release();
    (await newcomer).release();
  });

  it("refuses with 429 GW_DEVICE_BUSY only when the device's queue is full, counting the refusal", async () => {
    const { refusals, queue, acquire } = setup({ maxPerDevice: 2 });
    const first = await acquire("d", 1);
    const waiters = [acquire("d", 1), acquire("d", 1)];
    await pollUntil("two waiting", () => queue.size === 2, { timeoutMs: 2000 });
    const refused = acquire("d", 1);
    assert.equal(await codeOf(refused), "GW_DEVICE_BUSY");
    assert.deepEqual(refusals, ["device"]);
    first.release();
    for (const w of waiters) (await w).release();
  });

  it("bounds the waiting of all devices together (instance bound)", async () => {
    const { refusals, queue, acquire } = setup({ maxPerDevice: 10, maxTotal: 1 });
    const x = await acquire("x", 1);
    const y = await acquire("y", 1);
    const waiter = acquire("x", 1);
    await pollUntil("one waiting", () => queue.size === 1, { timeoutMs: 2000 });
    assert.equal(await codeOf(acquire("y", 1)), "GW_DEVICE_BUSY");
    assert.deepEqual(refusals, ["instance"]);
    x.release();
    (await waiter).release();
    y.release();
  });

  it("with a queue of 0, refuses as soon as the device is full", async () => {
    const { acquire } = setup({ maxPerDevice: 0 });
    const first = await acquire("d", 1);
    assert.equal(await codeOf(acquire("d", 1)), "GW_DEVICE_BUSY");
    first.release();
    (await acquire("d", 1)).release();
  });

  it("fails a waiter at its deadline with 504 GW_DEVICE_QUEUE_TIMEOUT", async () => {
    const { queue, acquire } = setup();
    const first = await acquire("d", 1);
    assert.equal(await codeOf(acquire("d", 1, { timeoutMs: 20 })), "GW_DEVICE_QUEUE_TIMEOUT");
    assert.equal(queue.size, 0);
    first.release();
  });

  it("takes a waiter whose client hung up out of the queue; the slot goes to the next one", async () => {
    const { slots, queue, acquire } = setup();
    const first = await acquire("d", 1);
    const quit = new AbortController();
    const leaving = acquire("d", 1, { signal: quit.signal });
    const staying = acquire("d", 1);
    await pollUntil("two waiting", () => queue.size === 2, { timeoutMs: 2000 });
    quit.abort();
    assert.equal(await codeOf(leaving), "GW_DEVICE_BUSY");
    assert.equal(queue.size, 1);
    first.release();
    const slot = await staying;
    assert.equal(slots.held.get("d"), 1);
    slot.release();
    assert.equal(slots.held.get("d"), 0, "nothing held by the one that left");
  });

  it("wakes a waiter on another instance's notice, and listens only while somebody waits", async () => {
    const { slots, notices, queue, acquire } = setup();
    await acquire("d", 1); // held "on another instance": never released here
    const waiter = acquire("d", 1);
    await pollUntil("one waiting", () => queue.size === 1, { timeoutMs: 2000 });
    assert.ok(notices.listening("slotfree:d"));
    slots.freeElsewhere("d");
    notices.notify("slotfree:d");
    (await waiter).release();
    assert.equal(notices.listening("slotfree:d"), false, "unsubscribed once nobody waits");
  });

  it("tries again at the earliest slot's deadline when no notice comes (a crashed instance's slot)", async () => {
    const { slots, queue, acquire } = setup({ retryInMs: 30 });
    await acquire("d", 1);
    const waiter = acquire("d", 1);
    await pollUntil("one waiting", () => queue.size === 1, { timeoutMs: 2000 });
    slots.freeElsewhere("d"); // reclaimed by expiry: nobody announces it
    (await waiter).release();
  });

  // Bounded well below the fallback retry (60 s): served only by the wake, or the test times out.
  it(
    "a slot released here while a first attempt was on its way is not missed (no wait for the fallback)",
    { timeout: 20_000 },
    async () => {
      // The fallback retry is 60 s away, and the catch-up attempt after subscribing never comes.
      const { slots, acquire } = setup({ subscribed: false });
      const first = await acquire("d", 1);
      // The attempt finds the set full; the holder releases before that answer arrives, waking nobody yet.
      slots.afterDecision = () => first.release();
      const second = acquire("d", 1);
      (await second).release();
    },
  );
});
