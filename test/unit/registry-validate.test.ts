/**
 * Admin input → DeviceRecord (gateway/registry/validate.ts): every field's rule, every problem reported with
 * the field it is about, and the JSON error body carrying `field`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CATALOGUE, errorBody, GatewayError } from "../../gateway/errors.js";
import { checkDevice, fullJidProblem, httpTargetProblem, normalizeLegacyAddress, validateDevice } from "../../gateway/registry/validate.js";
import { thrownBy } from "../helpers/thrown.js";

const XMPP = { id: "dev-1", transport: "xmpp" };
const HTTP = { id: "dev-1", transport: "http", httpTarget: "http://10.0.0.17:8080" };

/** validateDevice must refuse `input` with GW_INVALID_FIELD naming `field`, in a message that names it too. */
function refused(input: unknown, field: string, pathId?: string): GatewayError {
  const err = thrownBy(() => validateDevice(input, pathId));
  assert.ok(err instanceof GatewayError, `${JSON.stringify(input)}: expected a GatewayError, got ${String(err)}`);
  assert.equal(err.code, "GW_INVALID_FIELD", JSON.stringify(input));
  assert.equal(err.status, 400);
  assert.equal(err.field, field, `${JSON.stringify(input)}: ${err.message}`);
  assert.ok(err.message.includes(field), `message should name ${field}: ${err.message}`);
  return err;
}

describe("validateDevice: accepted records", () => {
  it("takes the smallest xmpp record and adds nothing", () => {
    assert.deepEqual(validateDevice(XMPP), { id: "dev-1", transport: "xmpp" });
  });

  it("takes every field, in a fixed order", () => {
    const record = validateDevice({
      maxInFlight: 10_000,
      timeoutMs: 600_000,
      codec: "xep0332",
      legacyAddress: "10.0.0.17:8080",
      httpTarget: "https://dev-17.lan:8443/base/path",
      jid: "dev-17@devices.example.com/agent",
      transport: "http",
      id: "dev-17",
    });
    assert.deepEqual(Object.keys(record), ["id", "transport", "jid", "httpTarget", "legacyAddress", "codec", "timeoutMs", "maxInFlight"]);
    assert.equal(record.maxInFlight, 10_000);
    assert.equal(record.timeoutMs, 600_000);
  });

  it("takes the id from the path when the body leaves it out, and accepts it repeated", () => {
    assert.equal(validateDevice({ transport: "xmpp" }, "dev-9").id, "dev-9");
    assert.equal(validateDevice({ id: "dev-9", transport: "xmpp" }, "dev-9").id, "dev-9");
  });

  it("accepts and drops the read-only updatedAt and online (a GET, edit, PUT round trip)", () => {
    const record = validateDevice({ ...XMPP, updatedAt: "2024-01-01T00:00:00.000Z", online: true });
    assert.deepEqual(record, { id: "dev-1", transport: "xmpp" });
  });

  it("accepts the id limits: 1 and 64 characters, dots, dashes and underscores", () => {
    for (const id of ["a", "x".repeat(64), "a.b_c-d9", "..."]) assert.equal(validateDevice({ id, transport: "xmpp" }).id, id);
  });

  it("stores the canonical id: lower case, from the body or the path, which may differ from each other in case only", () => {
    assert.equal(validateDevice({ id: "DEV-17", transport: "xmpp" }).id, "dev-17");
    assert.equal(validateDevice({ id: "Dev-17", transport: "xmpp" }, "dev-17").id, "dev-17");
    assert.equal(validateDevice({ transport: "xmpp" }, "DEV-17").id, "dev-17");
    assert.throws(
      () => validateDevice({ id: "dev-18", transport: "xmpp" }, "DEV-17"),
      /id in the body must be absent or the id in the path/,
    );
  });

  it("needs no httpTarget for xmpp, and keeps one when given (fallback)", () => {
    assert.equal(validateDevice({ ...XMPP, httpTarget: "http://h" }).httpTarget, "http://h");
  });

  it("accepts numeric bounds 1 for timeoutMs and maxInFlight", () => {
    const r = validateDevice({ ...XMPP, timeoutMs: 1, maxInFlight: 1 });
    assert.equal(r.timeoutMs, 1);
    assert.equal(r.maxInFlight, 1);
  });

  it("stores legacyAddress normalized", () => {
    assert.equal(validateDevice({ ...XMPP, legacyAddress: "Meter-17.LAN:08080" }).legacyAddress, "meter-17.lan:8080");
    assert.equal(validateDevice({ ...XMPP, legacyAddress: "[0:0:0:0:0:0:0:1]:80" }).legacyAddress, "[::1]:80");
  });
});

describe("validateDevice: refused input names its field", () => {
  it("a body that is not an object → field body", () => {
    for (const body of [null, [], [XMPP], "x", 42, true, undefined]) refused(body, "body");
  });

  it("unknown fields, including __proto__ and constructor", () => {
    refused({ ...XMPP, colour: "red" }, "colour");
    refused(JSON.parse('{"id":"d","transport":"xmpp","__proto__":{"polluted":1}}'), "__proto__");
    refused({ ...XMPP, constructor: 1 }, "constructor");
    assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  });

  it("a very long unknown field name is cut in field and message", () => {
    const err = refused({ ...XMPP, ["k".repeat(500)]: 1 }, `${"k".repeat(64)}…`);
    assert.ok(err.message.length < 400);
  });

  it("id: missing, not a string, empty, too long, bad characters", () => {
    for (const id of [undefined, 7, null, "", "x".repeat(65), "a b", "a/b", "a@b", "é", "a%20b"]) {
      refused({ id, transport: "xmpp" }, "id");
    }
  });

  it("id: a body naming another device than the path, or null", () => {
    refused({ id: "other", transport: "xmpp" }, "id", "dev-1");
    refused({ id: null, transport: "xmpp" }, "id", "dev-1");
  });

  it("id: a bad id in the path", () => {
    refused({ transport: "xmpp" }, "id", "bad id");
    refused({ transport: "xmpp" }, "id", "");
  });

  it("transport: missing or not xmpp/http", () => {
    for (const transport of [undefined, null, "XMPP", "none", "mqtt", 1]) refused({ id: "d", transport }, "transport");
  });

  it("httpTarget: required for http", () => {
    refused({ id: "d", transport: "http" }, "httpTarget");
  });

  it("httpTarget: not an http(s) URL, credentials, query, fragment, odd characters", () => {
    for (const httpTarget of [
      7,
      "",
      "10.0.0.17:8080",
      "ftp://h/",
      "file:///etc/passwd",
      "javascript:alert(1)",
      "http:/h",
      "http://",
      "http://user:pw@h/",
      "http://user@h/",
      "http://@h/",
      "http://h/?",
      "http://h/?a=1",
      "http://h/#x",
      "http://h/#",
      " http://h/",
      "http://h/ x",
      "http://h\t/",
      "http:\\\\h\\",
      `http://h/${"a".repeat(2048)}`,
    ]) {
      refused({ ...HTTP, httpTarget }, "httpTarget");
    }
  });

  it("jid: not a full JID", () => {
    for (const jid of [
      5,
      "",
      "dev@localhost",
      "localhost/agent",
      "@localhost/agent",
      "dev@/agent",
      "dev@localhost/",
      "dev/x@localhost/agent",
      'de"v@localhost/agent',
      "de:v@localhost/agent",
      "de<v@localhost/agent",
      "dev@local host/agent",
      "dev@localhost/ag ent",
      "dev@localhost/agent\n",
      "dev@localhost/a\u0000",
      "dev@-bad-.example/agent",
      "dev@under_score.example/agent",
      "dev@1.2.3/agent",
      "dev@[not-v6]/agent",
      `${"l".repeat(1024)}@localhost/agent`,
      `dev@localhost/${"r".repeat(1024)}`,
      `dev@localhost/${"é".repeat(1500)}`,
    ]) {
      refused({ ...XMPP, jid }, "jid");
    }
  });

  it("legacyAddress: not host:port, port out of range", () => {
    for (const legacyAddress of [
      1,
      "",
      "10.0.0.17",
      ":8080",
      "10.0.0.17:",
      "10.0.0.17:0",
      "10.0.0.17:65536",
      "10.0.0.17:123456",
      "10.0.0.17:-1",
      "10.0.0.17:80x",
      "010.0.0.17:80",
      "10.0.17:80",
      "256.0.0.1:80",
      "::1:80",
      "[::1]",
      "[fe80::1%eth0]:80",
      "[1.2.3.4]:80",
      "http://10.0.0.17:8080",
      "host_name:80",
      "-host:80",
      "a b:80",
      "h:80/path",
    ]) {
      refused({ ...XMPP, legacyAddress }, "legacyAddress");
    }
  });

  it("codec: only xep0332", () => {
    for (const codec of ["XEP0332", "json", "", null, 1]) refused({ ...XMPP, codec }, "codec");
  });

  it("timeoutMs: whole number 1..600000", () => {
    for (const timeoutMs of [0, -1, 600_001, 1.5, "1000", null, Number.NaN, Infinity]) refused({ ...XMPP, timeoutMs }, "timeoutMs");
  });

  it("maxInFlight: whole number 1..10000", () => {
    for (const maxInFlight of [0, 10_001, 2.5, "4", null, true]) refused({ ...XMPP, maxInFlight }, "maxInFlight");
  });
});

describe("checkDevice: every problem at once", () => {
  it("lists each bad field once, with a message naming it", () => {
    const result = checkDevice({
      id: "bad id",
      transport: "http",
      jid: "x",
      legacyAddress: "y",
      codec: "z",
      timeoutMs: 0,
      maxInFlight: 0,
      extra: 1,
    });
    assert.equal(result.ok, false);
    const problems = result.ok ? [] : result.problems;
    assert.deepEqual(problems.map((p) => p.field).sort(), [
      "codec",
      "extra",
      "httpTarget",
      "id",
      "jid",
      "legacyAddress",
      "maxInFlight",
      "timeoutMs",
    ]);
    for (const p of problems) assert.ok(p.message.includes(p.field), p.message);
  });

  it("is ok with the record for good input", () => {
    assert.deepEqual(checkDevice(XMPP), { ok: true, record: { id: "dev-1", transport: "xmpp" } });
  });
});

describe("the rules on their own", () => {
  it("fullJidProblem accepts full JIDs with IPs, odd resources and refuses more than 3071 bytes", () => {
    for (const jid of [
      "dev-17@devices.example.com/agent",
      "Dev.17_x+y@localhost/agent",
      "d@10.0.0.1/r",
      "d@[::1]/r",
      "d@localhost/res/with/slashes@and-at",
      "dév@localhost/agent",
      `${"l".repeat(1023)}@${"d".repeat(60)}.${"d".repeat(60)}/${"r".repeat(1023)}`,
    ]) {
      assert.equal(fullJidProblem(jid), undefined, jid);
    }
    const over = `${"l".repeat(1000)}@localhost/${"r".repeat(2100)}`;
    assert.ok(Buffer.byteLength(over) > 3071);
    assert.match(fullJidProblem(over) ?? "", /3071/);
  });

  it("httpTargetProblem accepts http and https base URLs with ports and paths", () => {
    for (const url of [
      "http://10.0.0.17:8080",
      "http://10.0.0.17:8080/",
      "https://dev.lan/base",
      "HTTP://Dev.Lan:80/x/y/",
      "http://[::1]:8080/",
    ]) {
      assert.equal(httpTargetProblem(url), undefined, url);
    }
  });

  it("normalizeLegacyAddress: one spelling per address", () => {
    const cases: Array<[string, string | undefined]> = [
      ["10.0.0.17:8080", "10.0.0.17:8080"],
      ["10.0.0.17:08080", "10.0.0.17:8080"],
      ["LOCALHOST:1", "localhost:1"],
      ["[::1]:65535", "[::1]:65535"],
      ["[0:0::1]:80", "[::1]:80"],
      ["[FE80::A]:80", "[fe80::a]:80"],
      ["host.example.com:443", "host.example.com:443"],
      ["10.0.0.17:0", undefined],
      ["nope", undefined],
    ];
    for (const [input, expected] of cases) assert.equal(normalizeLegacyAddress(input), expected, input);
  });
});

describe("errorBody with a field", () => {
  it("puts field after message, before deviceId and requestId", () => {
    const err = new GatewayError("GW_INVALID_FIELD", { field: "jid", message: "jid must be a full JID" });
    const body = errorBody(err, "req-1", "dev-1");
    assert.equal(
      JSON.stringify(body),
      JSON.stringify({
        error: { code: "GW_INVALID_FIELD", message: "jid must be a full JID", field: "jid", deviceId: "dev-1", requestId: "req-1" },
      }),
    );
  });

  it("leaves field out when there is none", () => {
    assert.deepEqual(Object.keys(errorBody(new GatewayError("GW_NOT_FOUND"), "r").error), ["code", "message", "requestId"]);
  });

  it("has the new codes in the catalogue", () => {
    assert.equal(CATALOGUE.GW_INVALID_FIELD.status, 400);
    assert.equal(CATALOGUE.GW_UNAUTHORIZED.status, 401);
    assert.equal(CATALOGUE.GW_CONFLICT.status, 409);
  });
});

describe("validateDevice: acceptAnnouncedAddress", () => {
  it("keeps true, drops false (the same as absent)", () => {
    assert.deepEqual(validateDevice({ ...XMPP, acceptAnnouncedAddress: true }), { ...XMPP, acceptAnnouncedAddress: true });
    assert.deepEqual(validateDevice({ ...XMPP, acceptAnnouncedAddress: false }), XMPP);
    assert.deepEqual(validateDevice({ ...HTTP, acceptAnnouncedAddress: false }), HTTP);
  });

  it("refuses anything but a boolean, and true for a device not reached over XMPP", () => {
    for (const bad of ["true", 1, null, {}]) refused({ ...XMPP, acceptAnnouncedAddress: bad }, "acceptAnnouncedAddress");
    refused({ ...HTTP, acceptAnnouncedAddress: true }, "acceptAnnouncedAddress");
    refused({ ...HTTP, transport: "shadow", acceptAnnouncedAddress: true }, "acceptAnnouncedAddress");
  });
});
