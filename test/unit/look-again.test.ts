/**
 * The waits before a reply whose correlation record is not found is looked up again (xmpp/reply-router.ts):
 * they start short, double, and add up to the bound exactly (the owner's Redis command timeout), never more;
 * and no more than MAX_LOOKING_AGAIN replies are looked up again at once.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { newId } from "../../gateway/correlation/ids.js";
import type { PendingExchanges } from "../../gateway/correlation/pending.js";
import type { CorrelationStore } from "../../gateway/correlation/store.js";
import type { StreamRoutes } from "../../gateway/correlation/stream-routes.js";
import type { Metrics } from "../../gateway/metrics/metrics.js";
import type { XmppExchanger } from "../../gateway/xmpp/exchange.js";
import { lookAgainWaits, MAX_LOOKING_AGAIN, ReplyRouter } from "../../gateway/xmpp/reply-router.js";

const sum = (waits: number[]) => waits.reduce((a, b) => a + b, 0);

describe("lookAgainWaits", () => {
  it("doubles from 25 ms and cuts the last so that the waits add up to the bound", () => {
    assert.deepEqual(lookAgainWaits(2000), [25, 50, 100, 200, 400, 800, 425]);
    assert.equal(sum(lookAgainWaits(2000)), 2000);
  });

  it("adds up to any bound, a short one in one wait", () => {
    for (const bound of [1, 24, 25, 26, 75, 999, 5000, 60_000]) assert.equal(sum(lookAgainWaits(bound)), bound, `bound ${bound}`);
    assert.deepEqual(lookAgainWaits(10), [10]);
  });

  it("asks few lookups even for a long bound", () => {
    assert.ok(lookAgainWaits(60_000).length <= 12);
  });
});

describe("replies looked up again", () => {
  it(`looks up again at most ${MAX_LOOKING_AGAIN} at once: one more is dropped after its first lookup`, async () => {
    const dropped: string[] = [];
    let lookups = 0;
    // No instance has a record for any of these ids: every reply ends dropped as unknown.
    const router = new ReplyRouter({
      bus: { forward: () => Promise.resolve(true) },
      exchanger: {
        offerReply: () => "not-mine",
        drop: (_reason: string, fields: { id: string }) => dropped.push(fields.id),
      } as unknown as XmppExchanger,
      pending: { recent: { get: () => undefined } } as unknown as PendingExchanges,
      store: { get: () => (lookups++, Promise.resolve(undefined)) } as unknown as CorrelationStore,
      streamRoutes: {} as StreamRoutes,
      metrics: {} as Metrics,
      instanceId: "gw-a",
      recordWriteBoundMs: 100,
    });
    const ids = Array.from({ length: MAX_LOOKING_AGAIN + 1 }, () => newId());
    for (const id of ids)
      router.fromServer({ name: "iq", attrs: { type: "result", id, from: "dev-1@devices.example.com/agent" }, children: [] });
    await router.settle(30_000);
    // The one over the bound went first, after its single lookup; the others after all of theirs (100 ms).
    assert.equal(dropped[0], ids[MAX_LOOKING_AGAIN]);
    assert.equal(dropped.length, ids.length);
    assert.equal(lookups, MAX_LOOKING_AGAIN * (1 + lookAgainWaits(100).length) + 1);
  });
});
