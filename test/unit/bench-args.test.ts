// `npm run bench` flags that apply to more than one mode (the capacity mode's own: bench-capacity.test.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseArgs } from "../../bench/common/args.js";

describe("bench --repeat", () => {
  it("runs the comparison once by default, N times when asked (1 to 20), and only in the default run", () => {
    const plain = parseArgs([]);
    assert.ok(plain !== "help");
    assert.equal(plain.paths.repeat, 1);
    const three = parseArgs(["--repeat", "3", "--quick"]);
    assert.ok(three !== "help");
    assert.equal(three.paths.repeat, 3);
    assert.throws(() => parseArgs(["--repeat", "0"]), /--repeat wants an integer/);
    assert.throws(() => parseArgs(["--repeat=21"]), /--repeat wants an integer/);
    assert.throws(() => parseArgs(["--soak", "--repeat", "2"]), /--repeat applies to the default run only/);
  });
});

describe("bench --gateway-env", () => {
  it("gives the gateway process settings, either spelling, repeatable; none by default", () => {
    const plain = parseArgs([]);
    assert.ok(plain !== "help");
    assert.deepEqual(plain.gatewayEnv, {});
    const set = parseArgs(["--gateway-env", "GATEWAY_DEVICE_SLOT_REUSE_MS=0", "--gateway-env=LOG_LEVEL=a=b", "--quick"]);
    assert.ok(set !== "help");
    assert.deepEqual(set.gatewayEnv, { GATEWAY_DEVICE_SLOT_REUSE_MS: "0", LOG_LEVEL: "a=b" });
    const soak = parseArgs(["--soak", "--gateway-env", "GATEWAY_DEVICE_SLOT_REUSE_MS=0"]);
    assert.ok(soak !== "help");
    assert.deepEqual(soak.gatewayEnv, { GATEWAY_DEVICE_SLOT_REUSE_MS: "0" });
  });

  it("refuses what is not NAME=VALUE, and the modes that start no gateway of their own", () => {
    assert.throws(() => parseArgs(["--gateway-env", "lower=1"]), /NAME=VALUE/);
    assert.throws(() => parseArgs(["--gateway-env"]), /NAME=VALUE/);
    assert.throws(() => parseArgs(["--gateway-env", "NOVALUE"]), /NAME=VALUE/);
    assert.throws(() => parseArgs(["--capacity", "--gateway-env", "A=1"]), /--gateway-env applies to/);
  });
});
