/**
 * Backoff: exponential ceiling (initialMs·2^attempt, capped at maxMs) with full jitter from an injected
 * random source, a floor of initialMs/10, reset() and the attempts counter.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Backoff, DEFAULT_BACKOFF } from "../../lib/backoff.js";

function delays(b: Backoff, n: number): number[] {
  return Array.from({ length: n }, () => b.next());
}

describe("Backoff", () => {
  it("with random 0 returns the floor, a tenth of initialMs, on every attempt", () => {
    const b = new Backoff({ initialMs: 250, maxMs: 30_000, random: () => 0 });
    assert.deepEqual(delays(b, 12), Array(12).fill(25));
  });

  it("with random 0.999 follows the doubling ceiling until the cap", () => {
    const b = new Backoff({ initialMs: 250, maxMs: 30_000, random: () => 0.999 });
    // ceilings: 250 500 1000 2000 4000 8000 16000 30000 (capped) 30000
    assert.deepEqual(delays(b, 9), [249, 499, 999, 1998, 3996, 7992, 15984, 29970, 29970]);
  });

  it("is full jitter: the delay scales with random() inside [0, ceiling]", () => {
    let r = 0.5;
    const b = new Backoff({ initialMs: 100, maxMs: 10_000, random: () => r });
    assert.equal(b.next(), 50); // ceiling 100
    r = 0.25;
    assert.equal(b.next(), 50); // ceiling 200
    r = 0.75;
    assert.equal(b.next(), 300); // ceiling 400
  });

  it("never goes below the floor even when random()·ceiling is smaller", () => {
    const b = new Backoff({ initialMs: 1000, maxMs: 60_000, random: () => 0.01 });
    assert.equal(b.next(), 100); // floor(0.01·1000) = 10 < 100
    assert.equal(b.next(), 100); // floor(0.01·2000) = 20 < 100
  });

  it("never exceeds maxMs", () => {
    const b = new Backoff({ initialMs: 300, maxMs: 1000, random: () => 0.999999 });
    for (const d of delays(b, 50)) assert.ok(d <= 1000, `delay ${d} over the cap`);
  });

  it("counts attempts, one per next()", () => {
    const b = new Backoff({ initialMs: 10, maxMs: 100, random: () => 0 });
    assert.equal(b.attempts, 0);
    b.next();
    b.next();
    b.next();
    assert.equal(b.attempts, 3);
  });

  it("reset() starts over from the first ceiling", () => {
    const b = new Backoff({ initialMs: 250, maxMs: 30_000, random: () => 0.999 });
    delays(b, 6);
    assert.equal(b.attempts, 6);
    b.reset();
    assert.equal(b.attempts, 0);
    assert.deepEqual(delays(b, 3), [249, 499, 999]);
  });

  it("stays finite and capped after many attempts (no overflow of 2^attempt)", () => {
    const b = new Backoff({ initialMs: 250, maxMs: 30_000, random: () => 0.999 });
    let last = 0;
    for (let i = 0; i < 5000; i++) last = b.next();
    assert.equal(last, 29970);
    assert.equal(b.attempts, 5000);
  });

  it("stays finite after many attempts even with an unbounded maxMs", () => {
    const b = new Backoff({ initialMs: 250, maxMs: Number.POSITIVE_INFINITY, random: () => 0.5 });
    let last = 0;
    for (let i = 0; i < 2000; i++) last = b.next();
    assert.ok(Number.isFinite(last), `delay ${last} is not finite`);
    assert.ok(Number.isSafeInteger(last));
  });

  it("defaults to 250 ms initial and a 30 s cap with Math.random", () => {
    assert.deepEqual({ ...DEFAULT_BACKOFF }, { initialMs: 250, maxMs: 30_000 });
    const b = new Backoff();
    for (let i = 0; i < 20; i++) {
      const d = b.next();
      assert.ok(d >= 25 && d <= 30_000, `delay ${d} out of range`);
    }
    const first = new Backoff().next();
    assert.ok(first >= 25 && first < 250, `first delay ${first} out of [25, 250)`);
  });
});
