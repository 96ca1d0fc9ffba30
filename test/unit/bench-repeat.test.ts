// `npm run bench -- --repeat N` (bench/ratios/repeat.ts): the targets read on the median of the runs' figures.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { target, type Target } from "../../bench/common/targets.js";
import { median, medianTargets } from "../../bench/ratios/repeat.js";

const cpuTarget = (measured: number | null, bound: number, caveat?: string): Target =>
  target({
    name: "pass-through (d): gateway cpu ms per request",
    measured,
    comparison: "<=",
    bound,
    unit: "cpu ms",
    ...(caveat ? { caveat } : {}),
  });
const ratioTarget = (measured: number): Target =>
  target({ name: "pass-through: rate d/c", measured, comparison: ">=", bound: 0.5, unit: "" });

describe("bench --repeat", () => {
  it("median: the middle value, the mean of the two middle ones, nothing from none; non-finite values left out", () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.equal(median([]), null);
    assert.equal(median([null, Number.NaN, 5]), 5);
  });

  it("reads each target on the medians of its measured value and of its bound, so one odd run does not decide", () => {
    const runs = [
      { targets: [cpuTarget(0.41, 0.45), ratioTarget(0.6)] },
      { targets: [cpuTarget(0.39, 0.31), ratioTarget(0.45)] },
      { targets: [cpuTarget(0.4, 0.42), ratioTarget(0.52)] },
    ];
    const [cpu, ratio] = medianTargets(runs);
    assert.deepEqual([cpu?.measured, cpu?.bound, cpu?.status], [0.4, 0.42, "met"]);
    assert.deepEqual([ratio?.measured, ratio?.bound, ratio?.status], [0.52, 0.5, "met"]);
    const worse = medianTargets([{ targets: [ratioTarget(0.3)] }, { targets: [ratioTarget(0.45)] }, { targets: [ratioTarget(0.9)] }]);
    assert.equal(worse[0]?.status, "missed");
  });

  it("a target no run measured stays not measured; the runs' caveats are kept", () => {
    const [t] = medianTargets([{ targets: [cpuTarget(null, 0.4, "profiled")] }, { targets: [cpuTarget(null, 0.3)] }]);
    assert.deepEqual([t?.measured, t?.status, t?.caveat], [null, "not measured", "profiled"]);
  });

  it("refuses runs whose targets differ", () => {
    assert.throws(() => medianTargets([{ targets: [ratioTarget(0.5)] }, { targets: [cpuTarget(0.4, 0.4)] }]), /differ/);
  });
});
