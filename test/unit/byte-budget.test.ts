import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ByteBudget } from "../../gateway/limits/byte-budget.js";

describe("ByteBudget", () => {
  it("lets reservations grow up to the budget, refuses what does not fit, and counts each refusal", () => {
    let refused = 0;
    const budget = new ByteBudget(100, { onRefused: () => refused++ });
    const a = budget.open();
    const b = budget.open();
    assert.equal(a.add(60), true);
    assert.equal(b.add(40), true);
    assert.equal(budget.held, 100);
    assert.equal(b.add(1), false, "one byte over the budget");
    assert.equal(b.bytes, 40, "a refused add reserves nothing");
    assert.equal(refused, 1);
    a.release();
    assert.equal(budget.held, 40);
    assert.equal(b.add(60), true);
    assert.equal(budget.held, 100);
  });

  it("reserveUpTo counts what the reservation already holds (a declared length, then the chunks within it)", () => {
    const budget = new ByteBudget(1000);
    const r = budget.open();
    assert.equal(r.reserveUpTo(500), true);
    assert.equal(r.reserveUpTo(200), true, "already covered");
    assert.equal(r.reserveUpTo(500), true);
    assert.equal(budget.held, 500);
    assert.equal(r.reserveUpTo(800), true);
    assert.equal(budget.held, 800);
    assert.equal(r.reserveUpTo(1001), false);
    assert.equal(budget.held, 800);
  });

  it("gives bytes back once, however often release is called, and refuses to grow a released reservation", () => {
    const budget = new ByteBudget(100);
    const r = budget.open();
    const other = budget.open();
    r.add(30);
    other.add(20);
    r.release();
    r.release();
    assert.equal(budget.held, 20, "a repeated release must not free another request's bytes");
    assert.equal(r.add(10), false, "bytes added after the release would never be given back");
    assert.equal(budget.held, 20);
    other.release();
    assert.equal(budget.held, 0);
  });

  it("a zero-byte add always passes, even on a full budget", () => {
    const budget = new ByteBudget(10);
    budget.open().add(10);
    assert.equal(budget.open().add(0), true);
  });
});
