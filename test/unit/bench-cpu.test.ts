// The bench's CPU accounts (bench/common/cpu.ts): seconds between two tick samples, and accounts of several
// measured windows added up, with a process absent at any edge reported as null rather than as a number.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { addCpuSeconds, cpuSecondsBetween } from "../../bench/common/cpu.js";

describe("bench CPU accounts", () => {
  it("turns two tick samples into seconds per process, null where a process is missing from either", () => {
    assert.deepEqual(
      cpuSecondsBetween(
        { gateway: 100, prosody: 50, gone: 7, late: undefined },
        { gateway: 350, prosody: 50, gone: undefined, late: 9 },
        100,
      ),
      {
        gateway: 2.5,
        prosody: 0,
        gone: null,
        late: null,
      },
    );
  });

  it("adds two windows' seconds process by process, and keeps a null once there is one", () => {
    assert.deepEqual(addCpuSeconds({ gateway: 1.5, prosody: null, agent: 0.25 }, { gateway: 0.5, prosody: 2, agent: null }), {
      gateway: 2,
      prosody: null,
      agent: null,
    });
  });
});
