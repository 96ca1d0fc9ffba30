/**
 * PendingExchanges (the in-process map of exchanges in flight, with deadlines on mocked timers) and
 * RecentOutcomes (the bounded memory of how finished exchanges ended).
 */
import { describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import type { HttpResponseMessage } from "../../lib/xep0332/message.js";
import { PendingExchanges, type PendingExchange } from "../../gateway/correlation/pending.js";
import { RecentOutcomes } from "../../gateway/correlation/recent.js";
import { GatewayError } from "../../gateway/errors.js";

const JID = "dev-17@localhost/agent";

function reply(status = 200, body = "ok"): HttpResponseMessage {
  return { statusCode: status, statusMessage: "OK", headers: [["Content-Type", "text/plain"]], body: Buffer.from(body) };
}

type Settled = { ok: true; value: HttpResponseMessage } | { ok: false; error: unknown };

/** Observes a promise without leaving its rejection unhandled, and lets the test ask whether it settled. */
function watch(p: Promise<HttpResponseMessage>): { readonly result: Settled | undefined; done: Promise<Settled> } {
  let result: Settled | undefined;
  const done = p.then(
    (value): Settled => (result = { ok: true, value }),
    (error: unknown): Settled => (result = { ok: false, error }),
  );
  return {
    get result() {
      return result;
    },
    done,
  };
}

function setup(t: TestContext) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  const timedOut: PendingExchange[] = [];
  const settled: PendingExchange[] = [];
  const pending = new PendingExchanges({ onTimeout: (p) => timedOut.push({ ...p }), onSettled: (p) => settled.push({ ...p }) });
  return { pending, timedOut, settled, tick: (ms: number) => t.mock.timers.tick(ms) };
}

describe("PendingExchanges", () => {
  it("resolves with the reply on settle, and cleans up", async (t) => {
    const { pending, settled, timedOut } = setup(t);
    const w = watch(pending.add("id-1", "dev-17", JID, 5000));
    assert.equal(pending.size, 1);
    const r = reply();
    assert.equal(pending.settle("id-1", r), true);
    const out = await w.done;
    assert.deepEqual(out, { ok: true, value: r });
    assert.equal(pending.size, 0);
    assert.equal(pending.get("id-1"), undefined);
    assert.equal(settled.length, 1);
    assert.equal(timedOut.length, 0);
  });

  it("records the exchange: id, device, normalized JID, deadline", (t) => {
    const { pending } = setup(t);
    void watch(pending.add("id-1", "Dev-17", "Dev-17@LocalHost/Agent", 5000));
    const p = pending.get("id-1");
    assert.ok(p);
    assert.deepEqual(
      [p.id, p.deviceId, p.jid, p.deadline, p.streamId],
      ["id-1", "Dev-17", "dev-17@localhost/Agent", 1_000_000 + 5000, undefined],
    );
    pending.failAll(new GatewayError("GW_SHUTTING_DOWN"));
  });

  it("rejects with GW_DEVICE_TIMEOUT exactly at the deadline, calling onTimeout then onSettled once", async (t) => {
    const { pending, settled, timedOut, tick } = setup(t);
    const w = watch(pending.add("id-1", "dev-17", JID, 5000));
    tick(4999);
    await Promise.resolve();
    assert.equal(w.result, undefined);
    assert.ok(pending.get("id-1"));
    assert.equal(timedOut.length, 0);
    tick(1);
    const out = await w.done;
    assert.equal(out.ok, false);
    assert.ok(!out.ok && out.error instanceof GatewayError);
    assert.equal(!out.ok && out.error.code, "GW_DEVICE_TIMEOUT");
    assert.equal(!out.ok && out.error.status, 504);
    assert.deepEqual(
      timedOut.map((p) => [p.id, p.deviceId, p.jid]),
      [["id-1", "dev-17", JID]],
    );
    assert.deepEqual(
      settled.map((p) => p.id),
      ["id-1"],
    );
    assert.equal(pending.size, 0);
    tick(60_000);
    assert.equal(timedOut.length, 1);
    assert.equal(settled.length, 1);
  });

  it("rejects with the GatewayError it is settled with, calling onSettled once and never onTimeout", async (t) => {
    const { pending, settled, timedOut, tick } = setup(t);
    const w = watch(pending.add("id-1", "dev-17", JID, 5000));
    const err = new GatewayError("GW_DEVICE_ERROR", { status: 404 });
    assert.equal(pending.settle("id-1", err), true);
    const out = await w.done;
    assert.deepEqual(out, { ok: false, error: err });
    tick(10_000);
    assert.equal(timedOut.length, 0, "the deadline timer must be cleared");
    assert.equal(settled.length, 1);
  });

  it("a second settle returns false and changes nothing", async (t) => {
    const { pending, settled } = setup(t);
    const w = watch(pending.add("id-1", "dev-17", JID, 5000));
    const first = reply(200, "first");
    assert.equal(pending.settle("id-1", first), true);
    assert.equal(pending.settle("id-1", reply(500, "second")), false);
    assert.equal(pending.settle("id-1", new GatewayError("GW_INTERNAL")), false);
    assert.deepEqual(await w.done, { ok: true, value: first });
    assert.equal(settled.length, 1);
  });

  it("settle of an unknown id returns false", (t) => {
    const { pending, settled } = setup(t);
    assert.equal(pending.settle("nope", reply()), false);
    assert.equal(settled.length, 0);
    assert.equal(pending.recent.get("nope"), undefined);
  });

  it("remembers 'duplicate' after a reply and 'late' after a timeout", async (t) => {
    const { pending, tick } = setup(t);
    const a = watch(pending.add("a", "dev-17", JID, 5000));
    const b = watch(pending.add("b", "dev-17", JID, 5000));
    pending.settle("a", reply());
    tick(5000);
    await a.done;
    await b.done;
    assert.equal(pending.recent.get("a"), "duplicate");
    assert.equal(pending.recent.get("b"), "late");
  });

  it("settle with after='late' is remembered as late", async (t) => {
    const { pending } = setup(t);
    const w = watch(pending.add("a", "dev-17", JID, 5000));
    pending.settle("a", new GatewayError("GW_XMPP_UNAVAILABLE"), "late");
    await w.done;
    assert.equal(pending.recent.get("a"), "late");
  });

  it("hasJid counts exchanges per normalized JID and drops to false when all have ended", async (t) => {
    const { pending, tick } = setup(t);
    const a = watch(pending.add("a", "dev-17", "Dev-17@LocalHost/agent", 5000));
    const b = watch(pending.add("b", "dev-17", "dev-17@localhost/agent", 1000));
    const c = watch(pending.add("c", "dev-18", "dev-18@localhost/agent", 5000));
    assert.equal(pending.hasJid("DEV-17@LOCALHOST/agent"), true);
    assert.equal(pending.hasJid("dev-17@localhost/Agent"), false, "the resource is compared exactly");
    assert.equal(pending.hasJid("dev-17@localhost"), false);
    tick(1000); // b times out
    await b.done;
    assert.equal(pending.hasJid(JID), true, "a is still in flight");
    pending.settle("a", reply());
    await a.done;
    assert.equal(pending.hasJid(JID), false);
    assert.equal(pending.hasJid("dev-18@localhost/agent"), true);
    pending.settle("c", new GatewayError("GW_INTERNAL"));
    await c.done;
    assert.equal(pending.hasJid("dev-18@localhost/agent"), false);
  });

  it("markStreaming sets the stream id, seen by get and by onSettled; unknown ids are ignored", async (t) => {
    const { pending, settled } = setup(t);
    const w = watch(pending.add("a", "dev-17", JID, 5000));
    assert.equal(pending.get("a")?.streamId, undefined);
    pending.markStreaming("a", "S1");
    pending.markStreaming("unknown", "S2");
    assert.equal(pending.get("a")?.streamId, "S1");
    pending.settle("a", reply());
    await w.done;
    assert.equal(settled[0]?.streamId, "S1");
  });

  it("failAll rejects every exchange with the error, remembers them as late and clears their timers", async (t) => {
    const { pending, settled, timedOut, tick } = setup(t);
    const ws = ["a", "b", "c"].map((id, i) => watch(pending.add(id, `dev-${i}`, `dev-${i}@localhost/agent`, 1000 * (i + 1))));
    const err = new GatewayError("GW_SHUTTING_DOWN");
    pending.failAll(err);
    for (const w of ws) assert.deepEqual(await w.done, { ok: false, error: err });
    assert.equal(pending.size, 0);
    assert.deepEqual(settled.map((p) => p.id).sort(), ["a", "b", "c"]);
    for (const id of ["a", "b", "c"]) assert.equal(pending.recent.get(id), "late");
    for (const jid of ["dev-0@localhost/agent", "dev-1@localhost/agent", "dev-2@localhost/agent"]) assert.equal(pending.hasJid(jid), false);
    tick(10_000);
    assert.equal(timedOut.length, 0);
    assert.equal(settled.length, 3);
  });

  it("failAll on an empty map does nothing", (t) => {
    const { pending, settled } = setup(t);
    pending.failAll(new GatewayError("GW_SHUTTING_DOWN"));
    assert.equal(settled.length, 0);
  });

  it("each exchange keeps its own deadline", async (t) => {
    const { pending, tick } = setup(t);
    const short = watch(pending.add("short", "d", JID, 100));
    const long = watch(pending.add("long", "d", JID, 300));
    tick(100);
    await short.done;
    await Promise.resolve();
    assert.equal(long.result, undefined);
    assert.equal(pending.size, 1);
    tick(200);
    const out = await long.done;
    assert.equal(!out.ok && (out.error as GatewayError).code, "GW_DEVICE_TIMEOUT");
  });

  it("works without hooks", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const pending = new PendingExchanges();
    const w = watch(pending.add("a", "d", JID, 10));
    t.mock.timers.tick(10);
    const out = await w.done;
    assert.equal(out.ok, false);
    assert.equal(pending.size, 0);
  });
});

describe("RecentOutcomes", () => {
  it("remembers outcomes by id", () => {
    const r = new RecentOutcomes(10);
    r.remember("a", "late");
    r.remember("b", "duplicate");
    assert.equal(r.get("a"), "late");
    assert.equal(r.get("b"), "duplicate");
    assert.equal(r.get("c"), undefined);
  });

  it("forgets the oldest ids first, half the capacity at a time", () => {
    const r = new RecentOutcomes(4);
    for (const id of ["a", "b", "c"]) r.remember(id, "late");
    assert.deepEqual(
      ["a", "b", "c"].map((id) => r.get(id)),
      ["late", "late", "late"],
    );
    r.remember("d", "late");
    assert.deepEqual(
      ["a", "b", "c", "d"].map((id) => r.get(id)),
      [undefined, undefined, "late", "late"],
    );
    r.remember("e", "duplicate");
    assert.equal(r.get("c"), "late");
    assert.equal(r.get("e"), "duplicate");
  });

  it("always knows the newest half of its capacity, and never more than all of it", () => {
    const r = new RecentOutcomes(10);
    for (let i = 0; i < 100; i++) {
      r.remember(`id-${i}`, "late");
      for (let back = 0; back < 5 && back <= i; back++) assert.equal(r.get(`id-${i - back}`), "late", `id-${i - back} after id-${i}`);
      if (i >= 10) assert.equal(r.get(`id-${i - 10}`), undefined, `id-${i - 10} after id-${i}`);
    }
  });

  it("remembering an id again refreshes its age and its outcome", () => {
    const r = new RecentOutcomes(4);
    r.remember("a", "late");
    r.remember("b", "late");
    r.remember("a", "duplicate");
    r.remember("c", "late");
    assert.equal(r.get("b"), undefined, "b is now the oldest");
    assert.equal(r.get("a"), "duplicate");
    assert.equal(r.get("c"), "late");
  });

  it("defaults to 10 000 entries", () => {
    const r = new RecentOutcomes();
    for (let i = 0; i < 10_000; i++) r.remember(`id-${i}`, "late");
    assert.equal(r.get("id-0"), undefined);
    assert.equal(r.get("id-5000"), "late");
    assert.equal(r.get("id-9999"), "late");
  });
});
