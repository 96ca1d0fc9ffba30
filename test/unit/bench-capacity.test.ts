/**
 * `npm run bench -- --capacity` (docs/capacity.md): what it reads from Redis. INFO commandstats counts a
 * script's inner commands as well as the EVALSHA, so the round trips come from MONITOR's source field; the
 * probe's own commands must never count as the gateway's. And the flags that select the mode.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseArgs } from "../../bench/common/args.js";
import { countMonitorLines, type MonitorCounts } from "../../bench/capacity/monitor.js";
import { diffStats, parseCommandStats, totalCalls } from "../../bench/capacity/redis-probe.js";

describe("bench --capacity: Redis readings", () => {
  it("parses INFO commandstats, leaving out the probe's own commands", () => {
    const info = [
      "# Commandstats",
      "cmdstat_evalsha:calls=40,usec=400,usec_per_call=10.00,rejected_calls=0,failed_calls=0",
      "cmdstat_get:calls=10,usec=20,usec_per_call=2.00,rejected_calls=0,failed_calls=0",
      "cmdstat_info:calls=7,usec=70,usec_per_call=10.00,rejected_calls=0,failed_calls=0",
      "cmdstat_memory|usage:calls=3,usec=9,usec_per_call=3.00,rejected_calls=0,failed_calls=0",
      "cmdstat_client|setname:calls=2,usec=2,usec_per_call=1.00,rejected_calls=0,failed_calls=0",
      "",
    ].join("\r\n");
    const stats = parseCommandStats(info);
    assert.deepEqual(stats.calls, { evalsha: 40, get: 10 });
    assert.deepEqual(stats.usec, { evalsha: 400, get: 20 });
    assert.equal(totalCalls(stats), 50);
  });

  it("subtracts two readings per command, dropping the commands that did not move", () => {
    const before = { calls: { evalsha: 40, get: 10 }, usec: { evalsha: 400, get: 20 } };
    const after = { calls: { evalsha: 48, get: 10, publish: 2 }, usec: { evalsha: 480, get: 20, publish: 4 } };
    assert.deepEqual(diffStats(before, after), { calls: { evalsha: 8, publish: 2 }, usec: { evalsha: 80, publish: 4 } });
  });

  it("tells a client's commands from a script's in MONITOR's output, and skips the probe's", () => {
    const counts: MonitorCounts = { client: {}, script: {} };
    countMonitorLines(
      [
        '+1764658000.000001 [0 127.0.0.1:50001] "evalsha" "abc" "1" "gw:corr:x"',
        '+1764658000.000002 [0 lua] "zadd" "gw:exchanges:dev@localhost/agent" "1" "x"',
        '+1764658000.000003 [0 lua] "TIME"',
        '+1764658000.000004 [0 127.0.0.1:50001] "GET" "gw:device:dev"',
        '+1764658000.000005 [0 127.0.0.1:50002] "info" "commandstats"',
        '+1764658000.000006 [0 unix:/tmp/redis.sock] "get" "gw:device:dev2"',
        "",
      ].join("\r\n"),
      counts,
    );
    assert.deepEqual(counts.client, { evalsha: 1, get: 2 });
    assert.deepEqual(counts.script, { zadd: 1, time: 1 });
  });
});

describe("bench --capacity: flags", () => {
  it("selects the mode with its defaults, and takes --requests, --devices and --held", () => {
    const plain = parseArgs(["--capacity"]);
    assert.ok(plain !== "help");
    assert.equal(plain.mode, "capacity");
    assert.deepEqual(plain.capacity, { requests: 5000, devices: 1000, held: 2000 });
    const set = parseArgs(["--capacity", "--requests", "300", "--devices=50", "--held", "100"]);
    assert.ok(set !== "help");
    assert.deepEqual(set.capacity, { requests: 300, devices: 50, held: 100 });
  });

  it("refuses flags of other modes, and a second mode", () => {
    assert.throws(() => parseArgs(["--capacity", "--hold", "5"]), /--soak only/);
    assert.throws(() => parseArgs(["--capacity", "--cpu-prof", "/tmp/x"]), /--cpu-prof applies to/);
    assert.throws(() => parseArgs(["--held", "100"]), /--capacity only/);
    assert.throws(() => parseArgs(["--capacity", "--fleet"]), /separate runs/);
  });
});
