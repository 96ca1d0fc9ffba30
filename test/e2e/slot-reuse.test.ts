// A device's in-flight slot reused by the instance that took it (GATEWAY_DEVICE_SLOT_REUSE_MS), against a real
// Redis, Prosody, device agents and device servers: successive requests share one slot taken from Redis; the
// limit across instances stays exact (a device never holds more than maxInFlight, with slots parked on
// both instances); a slot parked on one instance reaches a request waiting on another without waiting for
// the slot's deadline; a quiet device's slot stays parked for a client that comes back after the linger; a
// lowered maxInFlight holds; 0 turns the reuse off.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import { registryChangeSeen, startGateway, startTwoGateways, type RunningGateway } from "../helpers/gateway.js";
import { startCountingDevice, type CountingDevice } from "../helpers/counting-device.js";
import { startStack, Teardown, type Stack, testComponents } from "../helpers/stack.js";

type Transport = "xmpp" | "http";

describe("a device's in-flight slot, reused by the instance that took it", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let a: RunningGateway;
  let b: RunningGateway;
  /** GATEWAY_DEVICE_SLOT_REUSE_MS=0. */
  let off: RunningGateway;
  const prefix = `reuse-${randomBytes(3).toString("hex")}:`;
  const devices: CountingDevice[] = [];

  async function device(id: string, transport: Transport, settings: Partial<DeviceRecord> = {}) {
    const d = await startCountingDevice({ prosody: stack.prosody, teardown, writer: a, readers: [b, off] }, id, transport, settings);
    devices.push(d);
    return d;
  }

  /** gateway_device_slots_total by source. */
  async function slotCounts(g: RunningGateway): Promise<{ redis: number; reused: number }> {
    const values = (await g.gateway.metrics.deviceSlots.get()).values;
    const of = (source: string) => values.find((v) => v.labels.source === source)?.value ?? 0;
    return { redis: of("redis"), reused: of("reused") };
  }

  const slotsInRedis = (id: string) => a.gateway.redis.client.zcard(a.gateway.redis.keys.deviceSlots(id));
  const waiting = async (g: RunningGateway) => (await g.gateway.metrics.deviceQueueWaiting.get()).values[0]?.value ?? 0;

  async function ok(url: string): Promise<void> {
    const r = await fetch(url);
    assert.equal(r.status, 200, await r.text());
    await r.arrayBuffer().catch(() => undefined);
  }

  before(async () => {
    stack = teardown.stopLater("stack", await startStack({ prosody: { components: testComponents(3) } }));
    const common = { REDIS_KEY_PREFIX: prefix };
    // A window far longer than any test here: a quiet device's slot, parked until the window ends, is seen
    // still parked however slow the machine.
    [a, b] = await startTwoGateways(stack, teardown, { ...common, GATEWAY_DEVICE_SLOT_REUSE_MS: "60000" });
    const third = testComponents(3)[2] as { domain: string; secret: string };
    off = teardown.stopLater(
      "gateway without reuse",
      await startGateway(stack, {
        ...common,
        GATEWAY_INSTANCE_ID: "off",
        GATEWAY_DEVICE_SLOT_REUSE_MS: "0",
        XMPP_COMPONENT_DOMAIN: third.domain,
        XMPP_COMPONENT_SECRET: third.secret,
      }),
    );
  });
  after(async () => {
    for (const d of devices) d.releaseAll();
    await teardown.run();
  });

  for (const transport of ["http", "xmpp"] as const) {
    it(`${transport}: successive requests share the slot taken from Redis; parked, it stays in the set, then goes back`, async () => {
      const id = `seq-${transport}`;
      // One slot: never a quiet device (QUIET_SHARE), so its slot is parked for the linger only.
      await device(id, transport, { maxInFlight: 1 });
      const before = await slotCounts(a);
      // Slots of other devices may stay parked here meanwhile (a quiet device's, for its window).
      const parkedBefore = a.gateway.slots.parkedCount;
      const n = 30;
      for (let i = 0; i < n; i++) await ok(`${a.url}/devices/${id}/r${i}`);
      const counts = await slotCounts(a);
      const taken = counts.redis - before.redis;
      const reused = counts.reused - before.reused;
      assert.equal(taken + reused, n, "one slot per request");
      // Each next request comes within a few milliseconds of the last answer: nearly all are lent the slot.
      assert.ok(reused > 0, `reused ${reused} of ${n}`);
      // The parked slot is given back after its linger: none left in Redis, none parked.
      await pollUntil(
        "the parked slot given back",
        async () => (await slotsInRedis(id)) === 0 && a.gateway.slots.parkedCount <= parkedBefore,
        {
          timeoutMs: 10_000,
        },
      );
    });

    // Over XMPP through A alone: a device agent answers one gateway's component.
    const through = transport === "http" ? "two instances" : "one instance";
    it(`${transport}: a burst through ${through} at maxInFlight 2: the device never holds more than 2, every answer 200`, async () => {
      const id = `burst-${transport}`;
      const dev = await device(id, transport, { maxInFlight: 2 });
      const clients = (g: RunningGateway, tag: string) =>
        Array.from({ length: 6 }, async (_, c) => {
          for (let i = 0; i < 8; i++) await ok(`${g.url}/devices/${id}/${tag}${c}-${i}`);
        });
      await Promise.all([...clients(a, "a"), ...clients(transport === "http" ? b : a, "b")]);
      assert.ok(dev.most <= 2, `the device held ${dev.most} at once; maxInFlight is 2`);
      // (A device agent may call its device one request at a time: the limit is seen used on the pass-through.)
      if (transport === "http") assert.equal(dev.most, 2, "the device was used to its limit");
    });
  }

  it("a slot parked on A reaches B's waiting request long before the slot's deadline", async () => {
    const id = "cross";
    // Slots last 600 s: B's request waiting for the slot's deadline would outlast the poll below.
    const dev = await device(id, "http", { maxInFlight: 1, timeoutMs: 600_000 });
    const first = fetch(`${a.url}/devices/${id}/hold/a`);
    await pollUntil("A's request at the device", () => dev.held.length === 1, { timeoutMs: 10_000 });
    const second = fetch(`${b.url}/devices/${id}/hold/b`);
    await pollUntil("B's request waiting", async () => (await waiting(b)) === 1, { timeoutMs: 10_000 });
    dev.releaseAll(); // A's slot is parked on A, then given back with its notice
    assert.equal((await first).status, 200);
    await pollUntil("B's request at the device", () => dev.held.length === 1, { timeoutMs: 10_000 });
    dev.releaseAll();
    assert.equal(await (await second).text(), `released ${id}`);
  });

  it("a quiet device's slot stays parked past the linger for the device's next request; a one-slot device's goes back", async () => {
    const quiet = "quiet";
    const small = "small";
    await device(quiet, "http"); // 16 slots: its take leaves 15 free
    await device(small, "http", { maxInFlight: 1 });
    const before = await slotCounts(a);
    await ok(`${a.url}/devices/${quiet}/first`);
    await ok(`${a.url}/devices/${small}/first`);
    // Parked after the quiet device's, the small device's slot goes back at its linger, by the same sweep or
    // an earlier one than any that could give back the quiet device's.
    await pollUntil("the one-slot device's slot given back", async () => (await slotsInRedis(small)) === 0, { timeoutMs: 10_000 });
    assert.equal(await slotsInRedis(quiet), 1, "the quiet device's slot is still parked, and still in the set");
    await ok(`${a.url}/devices/${quiet}/later`);
    const counts = await slotCounts(a);
    assert.deepEqual(
      [counts.redis - before.redis, counts.reused - before.reused],
      [2, 1],
      "taken for each device's first request; lent to the later one",
    );
  });

  it("after maxInFlight is lowered from 2 to 1, two requests reach the device one at a time", async () => {
    const id = "lowered";
    const dev = await device(id, "http", { maxInFlight: 2 });
    const two = [fetch(`${a.url}/devices/${id}/hold/1`), fetch(`${a.url}/devices/${id}/hold/2`)];
    await pollUntil("both at the device", () => dev.held.length === 2, { timeoutMs: 10_000 });
    await a.gateway.registry.put({ id, transport: "http", httpTarget: (await a.gateway.registry.get(id))?.httpTarget, maxInFlight: 1 });
    await registryChangeSeen([a], id);
    dev.releaseAll(); // both slots parked on A
    for (const r of await Promise.all(two)) assert.equal(r.status, 200);
    const next = [fetch(`${a.url}/devices/${id}/hold/3`), fetch(`${a.url}/devices/${id}/hold/4`)];
    await pollUntil("one at the device, one waiting", async () => dev.held.length === 1 && (await waiting(a)) === 1, { timeoutMs: 10_000 });
    dev.releaseAll();
    await pollUntil("the second at the device", () => dev.held.length === 1, { timeoutMs: 10_000 });
    dev.releaseAll();
    for (const r of await Promise.all(next)) assert.equal(r.status, 200);
    assert.equal(dev.most, 2, "two at once only before the change");
  });

  it("GATEWAY_DEVICE_SLOT_REUSE_MS=0: every request takes its own slot and gives it back", async () => {
    const id = "no-reuse";
    await device(id, "http");
    const before = await slotCounts(off);
    for (let i = 0; i < 10; i++) await ok(`${off.url}/devices/${id}/r${i}`);
    const counts = await slotCounts(off);
    assert.deepEqual([counts.redis - before.redis, counts.reused - before.reused], [10, 0]);
    assert.equal(await slotsInRedis(id), 0, "given back with each answer");
  });
});
