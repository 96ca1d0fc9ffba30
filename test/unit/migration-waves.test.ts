// The pure parts of migration waves: the verdict on a wave's counts, which devices a percentage takes, the
// request's checks, and what this instance counts for a wave.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GatewayError } from "../../gateway/errors.js";
import { errorRate, judge } from "../../gateway/waves/judge.js";
import { WaveCounter } from "../../gateway/waves/outcome-counter.js";
import { parseWaveRequest } from "../../gateway/waves/request.js";
import { hashOrder, pickPercent, shareOf } from "../../gateway/waves/selection.js";

const limits = { minRequests: 20, maxErrorRateIncrease: 0.05, watchUntilMs: 1_000_000 };
const totals = (waveRequests: number, waveErrors: number, baseRequests: number, baseErrors: number) => ({
  waveRequests,
  waveErrors,
  baseRequests,
  baseErrors,
});

describe("judge: a wave's verdict", () => {
  it("breaches once the wave has minRequests and its error rate exceeds the baseline's by more than allowed", () => {
    const verdict = judge(totals(25, 10, 100, 1), limits, 0);
    assert.equal(verdict?.kind, "breach");
    assert.equal(verdict.kind === "breach" && verdict.detail, "error rate 0.40 against 0.01 (+0.39 > 0.05) after 25 requests");
  });

  it("waits for minRequests, however bad the wave looks", () => {
    assert.equal(judge(totals(19, 19, 100, 0), limits, 0), undefined);
    assert.equal(judge(totals(20, 20, 100, 0), limits, 0)?.kind, "breach");
  });

  it("does not breach at exactly the allowed increase, nor when the baseline is as bad", () => {
    assert.equal(judge(totals(100, 15, 100, 10), limits, 0), undefined);
    assert.equal(judge(totals(100, 50, 100, 50), limits, 0), undefined);
    assert.equal(judge(totals(100, 16, 100, 10), limits, 0)?.kind, "breach");
  });

  it("takes a baseline with no request as an error rate of 0", () => {
    assert.equal(errorRate(0, 0), 0);
    assert.equal(judge(totals(20, 1, 0, 0), limits, 0), undefined);
    assert.equal(judge(totals(20, 2, 0, 0), limits, 0)?.kind, "breach");
  });

  it("completes once the window passed; a breach at that moment wins", () => {
    assert.equal(judge(totals(5, 0, 5, 0), limits, limits.watchUntilMs - 1), undefined);
    assert.deepEqual(judge(totals(5, 0, 5, 0), limits, limits.watchUntilMs), { kind: "complete" });
    assert.equal(judge(totals(30, 30, 5, 0), limits, limits.watchUntilMs + 5)?.kind, "breach");
  });

  it("with a threshold of 0, any increase breaches", () => {
    assert.equal(judge(totals(20, 1, 20, 0), { ...limits, maxErrorRateIncrease: 0 }, 0)?.kind, "breach");
    assert.equal(judge(totals(20, 0, 20, 0), { ...limits, maxErrorRateIncrease: 0 }, 0), undefined);
  });
});

describe("selection: which devices a percentage takes", () => {
  it("rounds up, with no floating-point surprise, and never past the candidates", () => {
    assert.equal(shareOf(30, 10), 3); // 30 * 10 / 100 is 3.0000000000000004 in binary floating point
    assert.equal(shareOf(7, 10), 1);
    assert.equal(shareOf(11, 10), 2);
    assert.equal(shareOf(10_000, 0.01), 1);
    assert.equal(shareOf(10_000, 33.3), 3330);
    assert.equal(shareOf(3, 0.0000000001), 1);
    assert.equal(shareOf(3, 100), 3);
    assert.equal(shareOf(0, 50), 0);
  });

  it("orders by a hash of the ids: the same for the same fleet, whatever order the ids came in", () => {
    const ids = Array.from({ length: 200 }, (_, i) => `dev-${i}`);
    const order = hashOrder(ids);
    assert.deepEqual(hashOrder([...ids].reverse()), order);
    assert.deepEqual(new Set(order), new Set(ids));
    // Spread over the fleet: not the first ids of the listing.
    assert.notDeepEqual(order.slice(0, 20), ids.slice(0, 20));
  });

  it("takes the first of that order; a larger share contains a smaller one", () => {
    const ids = Array.from({ length: 1000 }, (_, i) => `node-${i}`);
    const ten = pickPercent(ids, 10);
    const twenty = pickPercent(ids, 20);
    assert.equal(ten.length, 100);
    assert.equal(twenty.length, 200);
    assert.deepEqual(twenty.slice(0, 100), ten);
    assert.deepEqual(
      pickPercent(
        [...ids].sort(() => 0.5 - Math.random()),
        10,
      ),
      ten,
    );
  });
});

describe("parseWaveRequest", () => {
  const fieldOf = (body: unknown): string | undefined => {
    try {
      parseWaveRequest(body);
    } catch (err) {
      assert.ok(err instanceof GatewayError && err.code === "GW_INVALID_FIELD", String(err));
      return err.field;
    }
    return undefined;
  };

  it("fills the defaults", () => {
    assert.deepEqual(parseWaveRequest({ percent: 10 }), {
      percent: 10,
      filter: {},
      windowMs: 600_000,
      maxErrorRateIncrease: 0.05,
      minRequests: 20,
      dryRun: false,
    });
    assert.deepEqual(parseWaveRequest({ ids: ["Dev-1", "dev-2"], windowMs: 60_000 }).ids, ["dev-1", "dev-2"]);
    assert.deepEqual(parseWaveRequest({ percent: 5, filter: { prefix: "Dev-", online: true } }).filter, { prefix: "dev-", online: true });
  });

  it("names the field at fault", () => {
    const cases: Array<[unknown, string]> = [
      [[], "body"],
      [null, "body"],
      [{}, "percent"],
      [{ ids: ["a"], percent: 5 }, "percent"],
      [{ percent: 0 }, "percent"],
      [{ percent: 100.5 }, "percent"],
      [{ percent: "10" }, "percent"],
      [{ ids: [] }, "ids"],
      [{ ids: "dev-1" }, "ids"],
      [{ ids: ["dev 1"] }, "ids"],
      [{ ids: ["dev-1", "DEV-1"] }, "ids"],
      [{ ids: Array.from({ length: 10_001 }, (_, i) => `d${i}`) }, "ids"],
      [{ ids: ["dev-1"], filter: { prefix: "d" } }, "filter"],
      [{ percent: 5, filter: [] }, "filter"],
      [{ percent: 5, filter: { transport: "http" } }, "filter.transport"],
      [{ percent: 5, filter: { prefix: "" } }, "filter.prefix"],
      [{ percent: 5, filter: { prefix: "a/b" } }, "filter.prefix"],
      [{ percent: 5, filter: { online: "true" } }, "filter.online"],
      [{ percent: 5, windowMs: 999 }, "windowMs"],
      [{ percent: 5, windowMs: 86_400_001 }, "windowMs"],
      [{ percent: 5, windowMs: 1500.5 }, "windowMs"],
      [{ percent: 5, maxErrorRateIncrease: 1.01 }, "maxErrorRateIncrease"],
      [{ percent: 5, maxErrorRateIncrease: -0.1 }, "maxErrorRateIncrease"],
      [{ percent: 5, minRequests: 0 }, "minRequests"],
      [{ percent: 5, minRequests: 1_000_001 }, "minRequests"],
      [{ percent: 5, dryRun: "yes" }, "dryRun"],
      [{ percent: 5, precent: 5 }, "precent"],
    ];
    for (const [body, field] of cases) assert.equal(fieldOf(body), field, JSON.stringify(body).slice(0, 80));
  });
});

describe("WaveCounter: what this instance counts", () => {
  it("counts nothing while no wave is watched", () => {
    const counter = new WaveCounter();
    counter.observe("dev-1", "http", 500);
    counter.watch("w1", ["dev-1"]);
    assert.deepEqual(counter.take("w1"), totals(0, 0, 0, 0));
  });

  it("counts wave requests by device and baseline requests over http outside any wave", () => {
    const counter = new WaveCounter();
    counter.watch("w1", ["dev-1", "dev-2"]);
    counter.observe("dev-1", "xmpp", 200);
    counter.observe("dev-2", "xmpp", 503);
    counter.observe("dev-2", "http", 502); // a fallback over http is still the wave's
    counter.observe("dev-1", "xmpp", 404); // 4xx: not counted
    counter.observe("dev-1", "xmpp", 499); // client hung up: not counted
    counter.observe("dev-1", "none", 503); // refused before any transport: not counted
    counter.observe("dev-9", "http", 200);
    counter.observe("dev-9", "http", 500);
    counter.observe("dev-8", "xmpp", 500); // not on http: no baseline
    counter.observe("dev-7", "shadow", 500);
    assert.deepEqual(counter.take("w1"), totals(3, 2, 2, 1));
    assert.deepEqual(counter.take("w1"), totals(0, 0, 0, 0), "taken once");
    assert.equal(counter.waveOf("dev-2"), "w1");
    assert.equal(counter.waveOf("dev-9"), undefined);
  });

  it("gives every watched wave the baseline; forgets a wave's devices when it stops", () => {
    const counter = new WaveCounter();
    counter.watch("w1", ["a"]);
    counter.watch("w2", ["b"]);
    counter.observe("c", "http", 200);
    counter.observe("b", "xmpp", 200);
    assert.deepEqual(counter.take("w1"), totals(0, 0, 1, 0));
    assert.deepEqual(counter.take("w2"), totals(1, 0, 1, 0));
    counter.unwatch("w2");
    counter.observe("b", "http", 500); // now a baseline request of w1
    assert.deepEqual(counter.take("w1"), totals(0, 0, 1, 1));
    counter.putBack("w1", totals(1, 1, 0, 0));
    assert.deepEqual(counter.take("w1"), totals(1, 1, 0, 0));
    counter.unwatch("w1");
    assert.deepEqual(counter.waveIds(), []);
  });
});
