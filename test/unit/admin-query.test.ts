/**
 * The admin API's listing parameters, cursor codec, bulk-move bodies and page walk, pure (no servers): every
 * bad parameter names itself, and a page stops where its limit or its bound says. The same against real
 * Redis, over HTTP, with 10,000 entries: test/e2e/admin-fleet.test.ts.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GatewayError } from "../../gateway/errors.js";
import { parseBulkRequest } from "../../gateway/http/routes/admin-bulk-request.js";
import { decodeCursor, encodeCursor, parseListingQuery } from "../../gateway/http/routes/admin-query.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import { devicePage, type IdRange, type OrderedDevices } from "../../gateway/registry/device-listing.js";
import { lexRange } from "../../gateway/registry/redis-registry.js";

/** The field a GW_INVALID_FIELD names, or a failure. */
function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof GatewayError, String(err));
    assert.equal(err.code, "GW_INVALID_FIELD");
    return err.field;
  }
  assert.fail("accepted");
}

describe("cursor codec", () => {
  it("is the unpadded base64url of the id, and decodes back", () => {
    assert.equal(encodeCursor("dev-1"), "ZGV2LTE");
    for (const id of ["a", "dev-1", "x".repeat(64), "Old_Id.9", "~"]) assert.equal(decodeCursor(encodeCursor(id)), id);
  });

  it("refuses what it did not make, naming the field", () => {
    for (const text of [
      "",
      "ZGV2LTE=",
      "ZGV2LTE.",
      "!!",
      "ZGV2LTE\n",
      "a",
      "AA",
      "wA",
      Buffer.from("a b").toString("base64url"),
      "x".repeat(2000),
    ]) {
      assert.equal(
        fieldOf(() => decodeCursor(text)),
        "cursor",
        JSON.stringify(text),
      );
    }
    assert.equal(
      fieldOf(() => decodeCursor("!!", "filter.cursor")),
      "filter.cursor",
    );
  });
});

describe("listing parameters", () => {
  it("defaults: 100 from the first id, no filter", () => {
    assert.deepEqual(parseListingQuery(""), { limit: 100 });
  });

  it("reads each parameter; the prefix in lower case, transports as a set", () => {
    const q = parseListingQuery(`limit=1000&cursor=${encodeCursor("dev-9")}&transport=http,shadow,http&online=false&prefix=DEV-`);
    assert.deepEqual(q, { limit: 1000, after: "dev-9", transports: new Set(["http", "shadow"]), online: false, prefix: "dev-" });
    assert.equal(parseListingQuery("limit=1").limit, 1);
    assert.equal(parseListingQuery("online=true").online, true);
  });

  it("refuses an unknown, repeated or bad parameter, naming it", () => {
    const cases: Array<[string, string]> = [
      ["foo=1", "foo"],
      ["a[b]=1", "a[b]"],
      ["Limit=5", "Limit"],
      ["limit=0", "limit"],
      ["limit=1001", "limit"],
      ["limit=abc", "limit"],
      ["limit=", "limit"],
      ["limit=1.5", "limit"],
      ["limit=-1", "limit"],
      ["limit=+5", "limit"],
      ["limit=10&limit=20", "limit"],
      ["cursor=", "cursor"],
      ["cursor=%%%", "cursor"],
      ["transport=", "transport"],
      ["transport=carrier-pigeon", "transport"],
      ["transport=http,", "transport"],
      ["transport=HTTP", "transport"],
      ["online=yes", "online"],
      ["online=", "online"],
      ["prefix=", "prefix"],
      ["prefix=a/b", "prefix"],
      [`prefix=${"a".repeat(65)}`, "prefix"],
    ];
    for (const [query, field] of cases)
      assert.equal(
        fieldOf(() => parseListingQuery(query)),
        field,
        query,
      );
  });
});

describe("bulk-move bodies", () => {
  it("by ids: canonical, each once; dryRun off unless said", () => {
    const r = parseBulkRequest({ ids: ["Dev-1", "dev-2", "DEV-1"], set: { transport: "xmpp" } });
    assert.deepEqual(r, { target: { ids: ["dev-1", "dev-2"] }, set: { transport: "xmpp" }, dryRun: false });
  });

  it("by filter: limit 500 unless given, the cursor decoded, null as none", () => {
    const r = parseBulkRequest({ filter: { transport: "http", prefix: "Dev-" }, set: { fallback: null }, cursor: null, dryRun: true });
    assert.deepEqual(r, {
      target: { filter: { transports: new Set(["http"]), prefix: "dev-" }, limit: 500, after: undefined },
      set: { fallback: null },
      dryRun: true,
    });
    const next = parseBulkRequest({
      filter: { online: false, transport: ["http", "shadow"] },
      set: { timeoutMs: 10 },
      limit: 7,
      cursor: encodeCursor("d"),
    });
    assert.deepEqual(next.target, { filter: { online: false, transports: new Set(["http", "shadow"]) }, limit: 7, after: "d" });
  });

  it("refuses every bad request, naming the field", () => {
    const set = { transport: "xmpp" };
    const cases: Array<[unknown, string]> = [
      [[], "body"],
      ["x", "body"],
      [null, "body"],
      [{ ids: ["a"], set, extra: 1 }, "extra"],
      [{ set }, "ids"],
      [{ ids: ["a"], filter: { prefix: "a" }, set }, "ids"],
      [{ ids: [], set }, "ids"],
      [{ ids: "a", set }, "ids"],
      [{ ids: Array.from({ length: 1001 }, (_, i) => `d${i}`), set }, "ids"],
      [{ ids: ["a/b"], set }, "ids"],
      [{ ids: [7], set }, "ids"],
      [{ ids: ["a"], set, limit: 5 }, "limit"],
      [{ ids: ["a"], set, cursor: null }, "cursor"],
      [{ filter: {}, set }, "filter"],
      [{ filter: "http", set }, "filter"],
      [{ filter: { color: "red" }, set }, "filter.color"],
      [{ filter: { transport: "pigeon" }, set }, "filter.transport"],
      [{ filter: { transport: [] }, set }, "filter.transport"],
      [{ filter: { transport: [1] }, set }, "filter.transport"],
      [{ filter: { online: "true" }, set }, "filter.online"],
      [{ filter: { prefix: "" }, set }, "filter.prefix"],
      [{ filter: { prefix: 5 }, set }, "filter.prefix"],
      [{ filter: { prefix: "a" }, set, limit: 0 }, "limit"],
      [{ filter: { prefix: "a" }, set, limit: 1001 }, "limit"],
      [{ filter: { prefix: "a" }, set, limit: "5" }, "limit"],
      [{ filter: { prefix: "a" }, set, cursor: "!!" }, "cursor"],
      [{ filter: { prefix: "a" }, set, cursor: 5 }, "cursor"],
      [{ ids: ["a"], set, dryRun: "yes" }, "dryRun"],
      [{ ids: ["a"] }, "set"],
      [{ ids: ["a"], set: {} }, "set"],
      [{ ids: ["a"], set: [] }, "set"],
      [{ ids: ["a"], set: { httpTarget: "http://10.0.0.1" } }, "set.httpTarget"],
      [{ ids: ["a"], set: { jid: "a@b/c" } }, "set.jid"],
      [{ ids: ["a"], set: { legacyAddress: "10.0.0.1:80" } }, "set.legacyAddress"],
      [{ ids: ["a"], set: { id: "b" } }, "set.id"],
      [{ ids: ["a"], set: { updatedAt: "x" } }, "set.updatedAt"],
      [{ ids: ["a"], set: { transport: null } }, "set.transport"],
      [{ ids: ["a"], set: { transport: "pigeon" } }, "set.transport"],
      [{ ids: ["a"], set: { timeoutMs: 0 } }, "set.timeoutMs"],
      [{ ids: ["a"], set: { maxInFlight: 1.5 } }, "set.maxInFlight"],
      [{ ids: ["a"], set: { fallback: "xmpp" } }, "set.fallback"],
      [{ ids: ["a"], set: { codec: "gzip" } }, "set.codec"],
      [{ ids: ["a"], set: { acceptAnnouncedAddress: "yes" } }, "set.acceptAnnouncedAddress"],
      [{ ids: ["a"], set: { acceptAnnouncedAddress: true, transport: "http" } }, "set.acceptAnnouncedAddress"],
    ];
    for (const [body, field] of cases)
      assert.equal(
        fieldOf(() => parseBulkRequest(body)),
        field,
        JSON.stringify(body).slice(0, 100),
      );
    // JSON.parse makes "__proto__" an own key: refused as a field, never merged.
    assert.equal(
      fieldOf(() => parseBulkRequest(JSON.parse('{"ids":["a"],"set":{"__proto__":{"transport":"http"}}}'))),
      "set.__proto__",
    );
  });

  it("leaves what depends on each device to each device (fallback without an httpTarget)", () => {
    assert.deepEqual(parseBulkRequest({ ids: ["a"], set: { fallback: "http", acceptAnnouncedAddress: true } }).set, {
      fallback: "http",
      acceptAnnouncedAddress: true,
    });
  });
});

describe("lex ranges of a page", () => {
  it("from the first id, after a cursor, within a prefix", () => {
    assert.deepEqual(lexRange({}), ["-", "+"]);
    assert.deepEqual(lexRange({ after: "b" }), ["(b", "+"]);
    assert.deepEqual(lexRange({ prefix: "dev-" }), ["[dev-", "(dev."]);
    assert.deepEqual(lexRange({ prefix: "dev-", after: "dev-5" }), ["(dev-5", "(dev."]);
    assert.deepEqual(lexRange({ prefix: "dev-", after: "abc" }), ["[dev-", "(dev."], "a cursor before the prefix starts at the prefix");
    assert.deepEqual(lexRange({ prefix: "dev-", after: "dev." }), [undefined, "(dev."], "a cursor past the prefix: nothing");
    assert.deepEqual(lexRange({ prefix: "z" }), ["[z", "({"]);
  });
});

/** The ordered ids in memory; counts what each page reads. */
class MemoryIds implements OrderedDevices {
  read = 0;
  constructor(private readonly records: Map<string, DeviceRecord>) {}
  private inRange({ after, prefix }: IdRange): string[] {
    return [...this.records.keys()]
      .filter((id) => (after === undefined || id > after) && (prefix === undefined || id.startsWith(prefix)))
      .sort();
  }
  idsIn(range: IdRange, count: number) {
    const ids = this.inRange(range).slice(0, count);
    this.read += ids.length;
    return Promise.resolve(ids);
  }
  countIn(range: IdRange) {
    return Promise.resolve(this.inRange(range).length);
  }
  getMany(ids: readonly string[]) {
    return Promise.resolve(ids.map((id) => this.records.get(id)));
  }
}

function fleet(n: number, transportOf: (i: number) => DeviceRecord["transport"]): Map<string, DeviceRecord> {
  return new Map(
    Array.from({ length: n }, (_, i) => {
      const id = `d${String(i).padStart(5, "0")}`;
      return [id, { id, transport: transportOf(i) }] as const;
    }),
  );
}

describe("a page of the walk", () => {
  it("ends with no next when its limit is reached at the last id", async () => {
    const devices = new MemoryIds(fleet(10, () => "xmpp"));
    const page = await devicePage({ devices }, { limit: 10 });
    assert.equal(page.devices.length, 10);
    assert.deepEqual([page.next, page.remaining], [undefined, 0]);
    const first = await devicePage({ devices }, { limit: 4 });
    assert.deepEqual([first.next, first.remaining], ["d00003", 6]);
  });

  it("examines at most max(limit x 10, 1000) ids, answering fewer entries (even none) and where it stopped", async () => {
    const devices = new MemoryIds(fleet(5000, (i) => (i === 4321 ? "shadow" : "xmpp")));
    const first = await devicePage({ devices }, { limit: 1, transports: new Set(["shadow"]) });
    assert.deepEqual([first.devices, first.next, first.remaining], [[], "d00999", 4000]);
    assert.equal(devices.read, 1000);
    devices.read = 0;
    const narrow = await devicePage({ devices }, { limit: 200, transports: new Set(["shadow"]) });
    assert.deepEqual([narrow.devices, narrow.next, narrow.remaining], [[], "d01999", 3000], "limit 200: 2000 ids");
    devices.read = 0;
    const wide = await devicePage({ devices }, { limit: 500, transports: new Set(["shadow"]) });
    assert.deepEqual([wide.devices.map((d) => d.id), wide.next, wide.remaining], [["d04321"], undefined, 0]);
    assert.equal(devices.read, 5000, "limit 500: up to 5000 ids, the whole fleet here");
  });

  it("skips ids whose record is gone, and asks presence only about the entries that passed the other filters", async () => {
    const records = fleet(6, (i) => (i % 2 === 0 ? "http" : "xmpp"));
    const devices = new MemoryIds(records);
    const getMany = devices.getMany.bind(devices);
    devices.getMany = (ids) => getMany(ids).then((rs) => rs.map((r) => (r?.id === "d00002" ? undefined : r)));
    const asked: string[] = [];
    const online = {
      areOnline: (rs: readonly DeviceRecord[]) => (asked.push(...rs.map((r) => r.id)), Promise.resolve(rs.map((r) => r.id !== "d00004"))),
    };
    const page = await devicePage({ devices, online }, { limit: 10, transports: new Set(["http"]), online: true });
    assert.deepEqual(
      page.devices.map((d) => d.id),
      ["d00000"],
    );
    assert.deepEqual(asked, ["d00000", "d00004"]);
    const offline = await devicePage({ devices, online }, { limit: 10, online: false });
    assert.deepEqual(
      offline.devices.map((d) => d.id),
      ["d00004"],
    );
  });
});
