/**
 * The device agent's servers (adapters/device-agent/servers.ts): AGENT_SERVICE's list syntax, RFC 2782's SRV
 * order (priority, then weight), XEP-0368's merge of xmpps-client and xmpp-client records with the RFC 6120
 * §3.2.2 fallback, and the rotation over servers with its backoff.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  isServiceList,
  orderSrvRecords,
  parseServiceList,
  resolveServices,
  ServerRotation,
  srvServices,
  type SrvRecord,
} from "../../adapters/device-agent/servers.js";

/** A random source that returns these values in turn. */
function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

const rec = (name: string, priority: number, weight: number, port = 5222): SrvRecord => ({ name, port, priority, weight });

describe("parseServiceList", () => {
  it("reads one URL, a comma-separated list (spaces allowed) and SRV domains", () => {
    assert.deepEqual(parseServiceList("xmpp://127.0.0.1:5222"), [{ kind: "url", url: "xmpp://127.0.0.1:5222" }]);
    assert.deepEqual(parseServiceList("xmpp://a:5222, xmpps://b:5223 ,xmpp-srv://example.com"), [
      { kind: "url", url: "xmpp://a:5222" },
      { kind: "url", url: "xmpps://b:5223" },
      { kind: "srv", domain: "example.com" },
    ]);
  });

  it("refuses empty entries, other schemes, SRV entries with a port or path, and no host", () => {
    for (const bad of [
      "",
      "xmpp://a:5222,",
      ",xmpp://a",
      "http://a:80",
      "xmpp://a,tcp://b",
      "xmpp-srv://example.com:5222",
      "xmpp-srv://example.com/x",
      "a:5222",
      "xmpp://",
    ]) {
      assert.equal(isServiceList(bad), false, bad);
      assert.throws(() => parseServiceList(bad), bad);
    }
  });
});

describe("orderSrvRecords (RFC 2782)", () => {
  it("puts lower priorities first whatever the weights", () => {
    const ordered = orderSrvRecords([rec("c", 20, 100), rec("a", 5, 0), rec("b", 10, 1)], () => 0.5);
    assert.deepEqual(
      ordered.map((r) => r.name),
      ["a", "b", "c"],
    );
  });

  it("within a priority, draws by running sums of the weights", () => {
    // weights 10, 30, 60 (sum 100): draw 0.5 -> 50 lands in the third record (running 10, 40, 100);
    // then over 10, 30 (sum 40): draw 0 -> 0 lands in the first; the last one remains.
    const records = [rec("w10", 1, 10), rec("w30", 1, 30), rec("w60", 1, 60)];
    assert.deepEqual(
      orderSrvRecords(records, sequence(0.5, 0)).map((r) => r.name),
      ["w60", "w10", "w30"],
    );
    // draw 0.05 -> 5: the first record (running sum 10 >= 5).
    assert.equal(orderSrvRecords(records, () => 0.05)[0]!.name, "w10");
  });

  it("puts weight-0 records first in the pool: only a draw of 0 picks them while others have weight", () => {
    const records = [rec("heavy", 1, 10), rec("zero", 1, 0)];
    assert.deepEqual(
      orderSrvRecords(records, () => 0).map((r) => r.name),
      ["zero", "heavy"],
    );
    assert.deepEqual(
      orderSrvRecords(records, () => 0.5).map((r) => r.name),
      ["heavy", "zero"],
    );
  });

  it("picks each record in proportion to its weight", () => {
    const records = [rec("one", 1, 1), rec("three", 1, 3)];
    let state = 1;
    const random = (): number => {
      state = (state * 16807) % 2147483647; // a seeded Park–Miller generator: the test is deterministic
      return (state - 1) / 2147483646;
    };
    let three = 0;
    for (let i = 0; i < 4000; i++) if (orderSrvRecords(records, random)[0]!.name === "three") three++;
    // RFC 2782's draw is a whole number in [0, sum] inclusive: 0..4 here, and "three" is chosen for 2, 3 and 4,
    // so 3/5 of first places (2400): weight decides, with the first record of the pool one chance ahead.
    assert.ok(three > 2250 && three < 2550, `three first ${three} times of 4000`);
  });

  it("keeps every record exactly once", () => {
    const records = [rec("a", 1, 5), rec("b", 1, 0), rec("c", 2, 7), rec("d", 1, 9), rec("e", 2, 0)];
    const ordered = orderSrvRecords(records, sequence(0.9, 0.1, 0.4, 0.7));
    assert.deepEqual(ordered.map((r) => r.name).sort(), ["a", "b", "c", "d", "e"]);
    assert.deepEqual(
      ordered.map((r) => r.priority),
      [1, 1, 1, 2, 2],
    );
  });
});

describe("srvServices (RFC 6120 §3.2, XEP-0368)", () => {
  it("merges xmpps-client and xmpp-client records into one order, each with its scheme", () => {
    const services = srvServices(
      "example.com",
      { xmpps: [rec("tls.example.com.", 10, 0, 5223)], xmpp: [rec("a.example.com.", 5, 0), rec("b.example.com.", 20, 0)] },
      () => 0,
    );
    assert.deepEqual(services, ["xmpp://a.example.com:5222", "xmpps://tls.example.com:5223", "xmpp://b.example.com:5222"]);
  });

  it("falls back to the domain on 5222 when neither set exists", () => {
    assert.deepEqual(srvServices("example.com", { xmpps: undefined, xmpp: undefined }), ["xmpp://example.com:5222"]);
  });

  it('treats a lone "." target as "not offered"', () => {
    const services = srvServices("example.com", { xmpps: [rec(".", 0, 0, 0)], xmpp: [rec("a.example.com", 0, 0)] });
    assert.deepEqual(services, ["xmpp://a.example.com:5222"]);
  });
});

describe("resolveServices", () => {
  it("keeps URL entries in place and expands SRV entries with the two lookups", async () => {
    const asked: string[] = [];
    const lookup = (name: string): Promise<SrvRecord[]> => {
      asked.push(name);
      if (name === "_xmpp-client._tcp.example.com") return Promise.resolve([rec("x1.example.com", 0, 0)]);
      return Promise.reject(Object.assign(new Error("no such name"), { code: "ENOTFOUND" }));
    };
    const list = await resolveServices(parseServiceList("xmpp://first:5222,xmpp-srv://example.com"), lookup);
    assert.deepEqual(list, ["xmpp://first:5222", "xmpp://x1.example.com:5222"]);
    assert.deepEqual(asked.sort(), ["_xmpp-client._tcp.example.com", "_xmpps-client._tcp.example.com"]);
  });

  it("with TLS off asks for _xmpp-client._tcp only: xmpps:// servers could not be used", async () => {
    const asked: string[] = [];
    const lookup = (name: string): Promise<SrvRecord[]> => {
      asked.push(name);
      return Promise.resolve([rec("x1.example.com", 0, 0)]);
    };
    const list = await resolveServices(parseServiceList("xmpp-srv://example.com"), lookup, { directTls: false });
    assert.deepEqual(list, ["xmpp://x1.example.com:5222"]);
    assert.deepEqual(asked, ["_xmpp-client._tcp.example.com"]);
  });

  it("falls back to the domain's own address when the lookups fail, and drops duplicates", async () => {
    const lookup = (): Promise<SrvRecord[]> => Promise.reject(Object.assign(new Error("timeout"), { code: "ETIMEOUT" }));
    const list = await resolveServices(parseServiceList("xmpp-srv://example.com,xmpp://example.com:5222"), lookup);
    assert.deepEqual(list, ["xmpp://example.com:5222"]);
  });
});

describe("ServerRotation", () => {
  const fixed = { initialMs: 200, maxMs: 10_000, random: () => 0.5 };

  it("with one server is a plain backoff: every failure is a failed round, the delay doubles, success resets it", () => {
    const r = new ServerRotation(fixed);
    r.load(["xmpp://only:5222"]);
    const delays = [r.failed(), r.failed(), r.failed()];
    assert.deepEqual(
      delays.map((d) => d.delayMs),
      [100, 200, 400],
    );
    assert.ok(delays.every((d) => d.roundOver));
    assert.equal(r.current, "xmpp://only:5222");
    r.succeeded();
    assert.equal(r.failed().delayMs, 100);
  });

  it("moves to the next server after a short jittered pause, and after a full round starts over with backoff", () => {
    const r = new ServerRotation(fixed);
    r.load(["a", "b", "c"]);
    assert.equal(r.current, "a");
    assert.deepEqual(r.failed(), { delayMs: 100, roundOver: false }); // jitter within the first delay only
    assert.equal(r.current, "b");
    assert.deepEqual(r.failed(), { delayMs: 100, roundOver: false });
    assert.equal(r.current, "c");
    assert.deepEqual(r.failed(), { delayMs: 100, roundOver: true }); // backoff of round 1: ceiling 200
    assert.equal(r.current, "a");
    r.failed();
    r.failed();
    assert.deepEqual(r.failed(), { delayMs: 200, roundOver: true }); // round 2: ceiling 400
    assert.equal(r.failedRounds, 2);
  });

  it("keeps a server that works, and tries it last once it drops the connection", () => {
    const r = new ServerRotation(fixed);
    r.load(["a", "b", "c"]);
    r.failed(); // a failed
    r.succeeded(); // b is online
    assert.equal(r.current, "b");
    assert.deepEqual(r.failed(), { delayMs: 100, roundOver: false }); // b dropped us: c next, not b again
    assert.equal(r.current, "c");
    r.failed(); // c failed: a next
    assert.equal(r.current, "a");
    assert.equal(r.failed().roundOver, true); // a, c and b have all failed since the last success
    assert.equal(r.current, "a"); // from the top, after the backoff
  });

  it("step delays stay within the first delay however many rounds failed", () => {
    const r = new ServerRotation({ initialMs: 200, maxMs: 10_000, random: () => 0.999 });
    r.load(["a", "b"]);
    for (let round = 0; round < 6; round++) {
      assert.ok(r.failed().delayMs <= 200);
      r.failed();
    }
  });

  it("refuses an empty list", () => {
    assert.throws(() => new ServerRotation().load([]), /no server/);
  });
});
