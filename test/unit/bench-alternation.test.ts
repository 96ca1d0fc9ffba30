// The default bench run measures a path and its baseline in alternating slices (bench/ratios/measure.ts,
// runs.ts) and adds each path's slices up (bench/ratios/load.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeWindows, loadResult, type WindowCounts } from "../../bench/ratios/load.js";
import { alternation } from "../../bench/ratios/measure.js";
import { sliceCount } from "../../bench/ratios/runs.js";

const window = (latencies: number[], fields: Partial<WindowCounts> = {}): WindowCounts => ({
  latencies,
  errors: 0,
  windowS: 2,
  warmupCompleted: 10,
  warmupErrors: 0,
  unfinished: 0,
  errorSamples: [],
  ...fields,
});

describe("bench: alternating slices", () => {
  it("alternation: each path gets the same number of slices, in the order a b b a, so a steady drift weighs on both alike", () => {
    assert.deepEqual(alternation(1), [0, 1]);
    assert.deepEqual(alternation(2), [0, 1, 1, 0]);
    assert.deepEqual(alternation(5), [0, 1, 1, 0, 0, 1, 1, 0, 0, 1]);
    for (let n = 1; n <= 12; n++) {
      const order = alternation(n);
      assert.equal(order.filter((w) => w === 0).length, n);
      assert.equal(order.filter((w) => w === 1).length, n);
      // A linear drift over the run: slice i runs at speed 1 + i. Over complete a b b a blocks the two
      // paths' mean positions are equal; at most one slice apart otherwise.
      const mean = (w: 0 | 1): number => order.reduce<number>((sum, x, i) => (x === w ? sum + i : sum), 0) / n;
      assert.ok(Math.abs(mean(0) - mean(1)) <= (n % 2 === 0 ? 0 : 1), `n=${n}`);
    }
  });

  it("sliceCount: slices of about 2 s, at least one", () => {
    assert.equal(sliceCount(10), 5);
    assert.equal(sliceCount(3), 2);
    assert.equal(sliceCount(1), 1);
    assert.equal(sliceCount(0.2), 1);
    assert.equal(sliceCount(60), 30);
  });

  it("mergeWindows: requests, errors and seconds add up; the rate and percentiles are those of all the slices' requests", () => {
    const merged = loadResult(
      mergeWindows([
        window([1, 2, 3], { errors: 1, errorSamples: ["status 502"] }),
        window([10, 20], { windowS: 3, unfinished: 2, errorSamples: ["status 502", "no answer"] }),
      ]),
    );
    assert.equal(merged.completed, 5);
    assert.equal(merged.errors, 1);
    assert.equal(merged.windowS, 5);
    assert.equal(merged.rate, 1);
    assert.equal(merged.warmupCompleted, 20);
    assert.equal(merged.unfinished, 2);
    assert.equal(merged.latencyMs.max, 20);
    assert.deepEqual(merged.errorSamples, ["status 502", "no answer"]);
  });

  it("mergeWindows: no windows, no requests and no rate", () => {
    const merged = loadResult(mergeWindows([]));
    assert.equal(merged.completed, 0);
    assert.equal(merged.rate, 0);
  });
});
