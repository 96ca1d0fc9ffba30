/**
 * The waits before a reply whose correlation record is not found is looked up again (xmpp/reply-router.ts):
 * they start short, double, and add up to the bound exactly (the owner's Redis command timeout), never more.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { lookAgainWaits } from "../../gateway/xmpp/reply-router.js";

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
