/**
 * EnvReader (typed, all-problems-at-once environment parsing) and the gateway's loadConfig: defaults,
 * validation lines that name their variable, whitespace-only values treated as unset.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import path from "node:path";
import { ConfigError, EnvReader, shownDefault } from "../../lib/env.js";
import { loadConfig } from "../../gateway/config.js";
import { expectConfigError } from "../helpers/thrown.js";

const SECRET = { XMPP_COMPONENT_SECRET: "s3cret" };

/** The lines naming `name` (each line starts with the variable it is about). */
function linesFor(err: ConfigError, name: string): string[] {
  return err.problems.filter((p) => p.startsWith(`${name}=`) || p.startsWith(`${name} `));
}

describe("EnvReader", () => {
  it("string: value trimmed, fallback when unset, empty or whitespace-only", () => {
    const r = new EnvReader({ A: "  x  ", B: "", C: " \t\n " });
    assert.equal(r.string("A", "d"), "x");
    assert.equal(r.string("B", "d"), "d");
    assert.equal(r.string("C", "d"), "d");
    assert.equal(r.string("MISSING", "d"), "d");
    assert.deepEqual(r.problems, []);
  });

  it("required: a missing or whitespace-only value is one problem naming the variable", () => {
    const r = new EnvReader({ B: "   " });
    assert.equal(r.required("A"), "");
    assert.equal(r.required("B"), "");
    assert.equal(r.problems.length, 2);
    assert.match(r.problems[0] ?? "", /^A\b/);
    assert.match(r.problems[1] ?? "", /^B\b/);
  });

  it("optional: undefined when unset or blank, trimmed otherwise", () => {
    const r = new EnvReader({ A: " v ", B: "  " });
    assert.equal(r.optional("A"), "v");
    assert.equal(r.optional("B"), undefined);
    assert.equal(r.optional("C"), undefined);
  });

  it("int: accepts whole numbers within bounds, inclusive", () => {
    const r = new EnvReader({ A: "0", B: "65535", C: " 42 " });
    assert.equal(r.int("A", 7, 0, 65535), 0);
    assert.equal(r.int("B", 7, 0, 65535), 65535);
    assert.equal(r.int("C", 7, 0), 42);
    assert.equal(r.int("D", 7, 0), 7);
    assert.deepEqual(r.problems, []);
  });

  it("int: rejects out of range, negative, fractional, exponent, signed and non-numeric values", () => {
    const bad = { A: "65536", B: "-1", C: "1.5", D: "1e3", E: "+5", F: "abc", G: "0x10", H: "9" };
    const r = new EnvReader(bad);
    for (const name of ["A", "B", "C", "D", "E", "F", "G"]) assert.equal(r.int(name, 123, 0, 65535), 123, name);
    assert.equal(r.int("H", 123, 10), 123); // below min
    assert.equal(r.problems.length, 8);
    for (const [i, name] of ["A", "B", "C", "D", "E", "F", "G", "H"].entries()) {
      assert.ok(r.problems[i]?.startsWith(`${name}=`), `problem ${i} should name ${name}: ${r.problems[i]}`);
    }
  });

  it("oneOf: accepts listed values only", () => {
    const r = new EnvReader({ A: "b", B: "z" });
    assert.equal(r.oneOf("A", "a", ["a", "b"]), "b");
    assert.equal(r.oneOf("B", "a", ["a", "b"]), "a");
    assert.equal(r.oneOf("C", "a", ["a", "b"]), "a");
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0] ?? "", /^B="z" .*a, b/);
  });

  it("url: checks the scheme, including of the fallback", () => {
    const r = new EnvReader({ A: "rediss://h:1", B: "http://h", C: "not a url" });
    assert.equal(r.url("A", "redis://x", ["redis:", "rediss:"]), "rediss://h:1");
    r.url("B", "redis://x", ["redis:"]);
    r.url("C", "redis://x", ["redis:"]);
    r.url("D", "ftp://x", ["redis:"]);
    assert.equal(r.problems.length, 3);
    assert.ok(r.problems[0]?.startsWith("B="));
    assert.ok(r.problems[1]?.startsWith("C="));
    assert.ok(r.problems[2]?.startsWith("D="));
  });

  it("secret: from NAME, or from NAME_FILE without its trailing newline; problems name the file, never the value", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "env-secret-"));
    try {
      const file = path.join(dir, "s");
      writeFileSync(file, "from-a-file\n");
      const empty = path.join(dir, "empty");
      writeFileSync(empty, "\n");
      const r = new EnvReader({ A: "direct", B_FILE: file, C: "x", C_FILE: file, D_FILE: path.join(dir, "missing"), E_FILE: empty });
      assert.equal(r.secret("A"), "direct");
      assert.equal(r.secret("B"), "from-a-file");
      r.secret("C");
      assert.equal(r.secret("D"), undefined);
      assert.equal(r.secret("E"), undefined);
      assert.equal(r.secret("F"), undefined);
      assert.equal(r.requiredSecret("G"), "");
      assert.deepEqual(
        r.problems.map((p) => p.split(/[ =]/)[0]),
        ["C", "D_FILE", "E_FILE", "G"],
      );
      assert.ok(r.problems.every((p) => !p.includes("from-a-file") && !p.includes("direct")));
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it("check and done: done throws a ConfigError with every problem, and nothing when clean", () => {
    const clean = new EnvReader({});
    clean.check("X", "v", true, "never");
    clean.done();
    const r = new EnvReader({});
    r.check("X", "v", false, "must be good");
    r.required("Y");
    const err = expectConfigError(() => r.done());
    assert.deepEqual(err.problems, ['X="v" must be good', "Y is required"]);
  });

  it("read: one setting of a table, as its kind, range and rule say", () => {
    const r = new EnvReader({ N: "7", BIG: "99", O: "3", K: "b", BADK: "z", T: "ok", BADT: "no", SEC: "short", REQ: "" });
    assert.equal(r.read("N", { kind: "int", default: 1, min: 0, max: 10, doc: "" }), 7);
    assert.equal(r.read("UNSET", { kind: "int", default: 1, min: 0, doc: "" }), 1);
    assert.equal(r.read("BIG", { kind: "int", default: 1, min: 0, max: 10, doc: "" }), 1);
    assert.equal(r.read("UNSET", { kind: "optionalInt", min: 0, unset: "", doc: "" }), undefined);
    assert.equal(r.read("O", { kind: "optionalInt", min: 0, unset: "", doc: "" }), 3);
    assert.equal(r.read("UNSET", { kind: "derivedInt", from: "N", min: 1, doc: "" }, 42), 42);
    assert.equal(r.read("UNSET", { kind: "derivedString", shown: "`x`", doc: "" }, "computed"), "computed");
    assert.equal(r.read("K", { kind: "optionalOneOf", allowed: ["a", "b"], unset: "", doc: "" }), "b");
    assert.equal(r.read("UNSET", { kind: "optionalOneOf", allowed: ["a", "b"], unset: "", doc: "" }), undefined);
    r.read("BADK", { kind: "optionalOneOf", allowed: ["a", "b"], unset: "", doc: "" });
    const rule = { ok: (v: string) => v === "ok", rule: "must be ok" };
    assert.equal(r.read("T", { kind: "optional", unset: "", check: rule, doc: "" }), "ok");
    r.read("BADT", { kind: "string", default: "ok", check: rule, doc: "" });
    assert.equal(r.read("SEC", { kind: "secret", required: false, unset: "", check: rule, doc: "" }), "short");
    r.read("REQ", { kind: "required", doc: "" });
    assert.deepEqual(
      r.problems.map((p) => p.split(/[ =]/)[0]),
      ["BIG", "BADK", "BADT", "SEC", "REQ"],
    );
    // A secret's problem gives its length, never the value.
    assert.equal(r.problems[3], "SEC (5 characters) must be ok");
  });

  it("shownDefault: how README's configuration table spells each kind's default", () => {
    assert.equal(shownDefault({ kind: "int", default: 8080, min: 0, doc: "" }), "`8080`");
    assert.equal(shownDefault({ kind: "secret", required: true, doc: "" }), "(required)");
    assert.equal(shownDefault({ kind: "optional", unset: "", doc: "" }), "(unset)");
    assert.equal(shownDefault({ kind: "optional", unset: "no admin API", doc: "" }), "(unset: no admin API)");
    assert.equal(shownDefault({ kind: "derivedInt", from: "A", min: 1, doc: "" }), "`A`");
    assert.equal(shownDefault({ kind: "optionalOneOf", allowed: ["a"], unset: "", shown: "`a`", doc: "" }), "`a`");
  });
});

describe("loadConfig", () => {
  it("has the documented defaults when only XMPP_COMPONENT_SECRET is set", () => {
    const config = loadConfig(SECRET);
    assert.deepEqual(config, {
      http: {
        host: "0.0.0.0",
        port: 8080,
        maxBodyBytes: 10_485_760,
        headersTimeoutMs: 20_000,
        receiveTimeoutMs: 300_000,
        maxHeaders: 100,
        lingerMs: 30_000,
        lingerIdleMs: 5000,
      },
      redis: { url: "redis://127.0.0.1:6379", keyPrefix: "gw:", commandTimeoutMs: 2000, waitReplicas: { replicas: 0, timeoutMs: 250 } },
      xmpp: { service: "xmpp://127.0.0.1:5347", domain: "gateway.localhost", secret: "s3cret" },
      devices: {
        jidTemplate: "{id}@localhost/agent",
        defaultTransport: "xmpp",
        maxInFlight: 16,
        queueMax: 256,
        registryCacheMs: 5000,
        slotReuseMs: 1000,
      },
      limits: { maxInFlight: 10_000, maxBufferedBytes: 134_217_728 },
      admin: {},
      waves: { checkMs: 1000 },
      exchange: {
        timeoutMs: 30_000,
        maxReplyBytes: 10_485_760,
        chunkThresholdBytes: 65_536,
        chunkSizeBytes: 32_768,
        offlineRetryAfterS: 30,
        recordHoldMs: 50,
      },
      presence: { onlineTtlMs: 180_000, offlineTtlMs: 86_400_000 },
      requests: {
        resultTtlMs: 3_600_000,
        queueTtlMs: 3_600_000,
        queue: { maxPerDevice: 100, maxBytesPerDevice: 33_554_432, maxTotal: 100_000, maxTotalBytes: 536_870_912 },
        idempotencyTtlMs: 86_400_000,
        busyRetryAfterS: 1,
      },
      drainGraceMs: 3000,
      drainTimeoutMs: 25_000,
      instanceId: `${hostname()}-${process.pid}`,
      logLevel: "info",
      tracing: undefined,
    });
  });

  it("reads every variable when set", () => {
    const config = loadConfig({
      XMPP_COMPONENT_SECRET: "x",
      GATEWAY_PORT: "9090",
      GATEWAY_HOST: "127.0.0.1",
      GATEWAY_MAX_BODY_BYTES: "1000",
      REDIS_URL: "rediss://cache:6380/2",
      REDIS_KEY_PREFIX: "t1:",
      REDIS_COMMAND_TIMEOUT_MS: "500",
      REDIS_WAIT_REPLICAS: "1",
      REDIS_WAIT_TIMEOUT_MS: "100",
      XMPP_COMPONENT_SERVICE: "xmpp://prosody:5347",
      XMPP_COMPONENT_DOMAIN: "gw.example.com",
      DEVICE_JID_TEMPLATE: "dev-{id}@devices.example.com/agent",
      GATEWAY_REQUEST_TIMEOUT_MS: "1500",
      GATEWAY_MAX_REPLY_BYTES: "2000",
      GATEWAY_CHUNK_THRESHOLD_BYTES: "4096",
      GATEWAY_CHUNK_SIZE_BYTES: "1024",
      GATEWAY_OFFLINE_RETRY_AFTER_S: "5",
      GATEWAY_CORRELATION_HOLD_MS: "200",
      GATEWAY_DRAIN_TIMEOUT_MS: "100",
      GATEWAY_DRAIN_GRACE_MS: "50",
      GATEWAY_PRESENCE_TTL_S: "90",
      GATEWAY_OFFLINE_TTL_S: "600",
      GATEWAY_RESULT_TTL_S: "60",
      GATEWAY_QUEUE_TTL_S: "120",
      GATEWAY_IDEMPOTENCY_TTL_S: "300",
      GATEWAY_BUSY_RETRY_AFTER_S: "2",
      GATEWAY_INSTANCE_ID: "gw-a",
      LOG_LEVEL: "debug",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "gw-eu",
      DEFAULT_TRANSPORT: "none",
      GATEWAY_DEVICE_MAX_IN_FLIGHT: "4",
      GATEWAY_DEVICE_QUEUE_MAX: "0",
      GATEWAY_ADMIN_TOKEN: "admin-token-0123456789",
      GATEWAY_DEVICES_FILE: "/etc/gateway/devices.yaml",
      GATEWAY_REGISTRY_CACHE_MS: "0",
      GATEWAY_DEVICE_SLOT_REUSE_MS: "0",
      GATEWAY_MAX_IN_FLIGHT: "500",
      GATEWAY_HEADERS_TIMEOUT_MS: "5000",
      GATEWAY_RECEIVE_TIMEOUT_MS: "60000",
      GATEWAY_MAX_HEADERS: "50",
      GATEWAY_LINGER_MS: "10000",
      GATEWAY_LINGER_IDLE_MS: "2000",
      GATEWAY_CLIENT_RATE_LIMIT: "120",
      GATEWAY_CLIENT_RATE_WINDOW_S: "60",
      GATEWAY_CLIENT_RATE_BURST: "10",
      GATEWAY_CLIENT_KEY: "header:X-Api-Key",
      GATEWAY_MAX_BUFFERED_BYTES: "5000",
      GATEWAY_QUEUE_MAX_PER_DEVICE: "7",
      GATEWAY_QUEUE_MAX_BYTES_PER_DEVICE: "8000",
      GATEWAY_QUEUE_MAX_TOTAL: "900",
      GATEWAY_QUEUE_MAX_TOTAL_BYTES: "90000",
      GATEWAY_WAVE_CHECK_MS: "250",
    });
    assert.deepEqual(config, {
      http: {
        host: "127.0.0.1",
        port: 9090,
        maxBodyBytes: 1000,
        headersTimeoutMs: 5000,
        receiveTimeoutMs: 60_000,
        maxHeaders: 50,
        lingerMs: 10_000,
        lingerIdleMs: 2000,
      },
      redis: { url: "rediss://cache:6380/2", keyPrefix: "t1:", commandTimeoutMs: 500, waitReplicas: { replicas: 1, timeoutMs: 100 } },
      xmpp: { service: "xmpp://prosody:5347", domain: "gw.example.com", secret: "x" },
      devices: {
        jidTemplate: "dev-{id}@devices.example.com/agent",
        defaultTransport: "none",
        maxInFlight: 4,
        queueMax: 0,
        registryCacheMs: 0,
        slotReuseMs: 0,
        file: "/etc/gateway/devices.yaml",
      },
      limits: {
        maxInFlight: 500,
        clientRate: { ratePerS: 2, burst: 10, key: { kind: "header", name: "x-api-key" } },
        maxBufferedBytes: 5000,
      },
      admin: { token: "admin-token-0123456789" },
      waves: { checkMs: 250 },
      exchange: {
        timeoutMs: 1500,
        maxReplyBytes: 2000,
        chunkThresholdBytes: 4096,
        chunkSizeBytes: 1024,
        offlineRetryAfterS: 5,
        recordHoldMs: 200,
      },
      presence: { onlineTtlMs: 90_000, offlineTtlMs: 600_000 },
      requests: {
        resultTtlMs: 60_000,
        queueTtlMs: 120_000,
        queue: { maxPerDevice: 7, maxBytesPerDevice: 8000, maxTotal: 900, maxTotalBytes: 90_000 },
        idempotencyTtlMs: 300_000,
        busyRetryAfterS: 2,
      },
      drainGraceMs: 50,
      drainTimeoutMs: 100,
      instanceId: "gw-a",
      logLevel: "debug",
      tracing: { serviceName: "gw-eu", url: "http://collector:4318/v1/traces", protocol: "http/json" },
    });
  });

  it("client rate limit: off at 0, burst defaults to the limit, a bad key mode is named", () => {
    assert.equal(
      loadConfig({ ...SECRET, GATEWAY_CLIENT_RATE_LIMIT: "0", GATEWAY_CLIENT_KEY: "x-forwarded-for" }).limits.clientRate,
      undefined,
    );
    assert.deepEqual(loadConfig({ ...SECRET, GATEWAY_CLIENT_RATE_LIMIT: "50" }).limits.clientRate, {
      ratePerS: 50,
      burst: 50,
      key: { kind: "ip" },
    });
    const err = expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_CLIENT_KEY: "cookie:sid", GATEWAY_MAX_IN_FLIGHT: "0" }));
    assert.equal(linesFor(err, "GATEWAY_CLIENT_KEY").length, 1);
    assert.equal(linesFor(err, "GATEWAY_MAX_IN_FLIGHT").length, 1);
  });

  it("device queue: 256 waiting per device by default, 0 (none wait) allowed, negative refused", () => {
    assert.equal(loadConfig({ ...SECRET }).devices.queueMax, 256);
    assert.equal(loadConfig({ ...SECRET, GATEWAY_DEVICE_QUEUE_MAX: "0" }).devices.queueMax, 0);
    assert.equal(
      linesFor(
        expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_DEVICE_QUEUE_MAX: "-1" })),
        "GATEWAY_DEVICE_QUEUE_MAX",
      ).length,
      1,
    );
  });

  it("device slot reuse: 1 s by default, 0 (off) allowed, negative or over 60 s refused", () => {
    assert.equal(loadConfig({ ...SECRET }).devices.slotReuseMs, 1000);
    assert.equal(loadConfig({ ...SECRET, GATEWAY_DEVICE_SLOT_REUSE_MS: "0" }).devices.slotReuseMs, 0);
    for (const bad of ["-1", "60001", "1.5"])
      assert.equal(
        linesFor(
          expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_DEVICE_SLOT_REUSE_MS: bad })),
          "GATEWAY_DEVICE_SLOT_REUSE_MS",
        ).length,
        1,
        bad,
      );
  });

  it("linger after an early answer: 0 turns it off; a negative time or an idle gap of 0 is named", () => {
    assert.equal(loadConfig({ ...SECRET, GATEWAY_LINGER_MS: "0" }).http.lingerMs, 0);
    const err = expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_LINGER_MS: "-1", GATEWAY_LINGER_IDLE_MS: "0" }));
    assert.equal(linesFor(err, "GATEWAY_LINGER_MS").length, 1);
    assert.equal(linesFor(err, "GATEWAY_LINGER_IDLE_MS").length, 1);
  });

  it("memory budget and offline queue bounds: at least 1, and the budget not below one request or reply", () => {
    const err = expectConfigError(() =>
      loadConfig({
        ...SECRET,
        GATEWAY_MAX_BUFFERED_BYTES: "1048576",
        GATEWAY_QUEUE_MAX_PER_DEVICE: "0",
        GATEWAY_QUEUE_MAX_TOTAL_BYTES: "-1",
      }),
    );
    assert.equal(linesFor(err, "GATEWAY_MAX_BUFFERED_BYTES").length, 1, "below the default 10 MiB GATEWAY_MAX_BODY_BYTES");
    assert.equal(linesFor(err, "GATEWAY_QUEUE_MAX_PER_DEVICE").length, 1);
    assert.equal(linesFor(err, "GATEWAY_QUEUE_MAX_TOTAL_BYTES").length, 1);
    const small = loadConfig({
      ...SECRET,
      GATEWAY_MAX_BUFFERED_BYTES: "1048576",
      GATEWAY_MAX_BODY_BYTES: "1048576",
      GATEWAY_MAX_REPLY_BYTES: "65536",
    });
    assert.equal(small.limits.maxBufferedBytes, 1_048_576);
    const reply = expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_MAX_BUFFERED_BYTES: "1048576", GATEWAY_MAX_BODY_BYTES: "1024" }));
    assert.equal(linesFor(reply, "GATEWAY_MAX_BUFFERED_BYTES").length, 1, "below the default 10 MiB GATEWAY_MAX_REPLY_BYTES");
  });

  it("refuses a receive timeout below the headers timeout", () => {
    const err = expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_HEADERS_TIMEOUT_MS: "5000", GATEWAY_RECEIVE_TIMEOUT_MS: "4000" }));
    assert.equal(linesFor(err, "GATEWAY_RECEIVE_TIMEOUT_MS").length, 1);
  });

  it("refuses a correlation hold above half of the Redis command timeout, within which other instances look records up", () => {
    const err = expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_CORRELATION_HOLD_MS: "300", REDIS_COMMAND_TIMEOUT_MS: "500" }));
    assert.equal(linesFor(err, "GATEWAY_CORRELATION_HOLD_MS").length, 1);
    assert.equal(loadConfig({ ...SECRET, GATEWAY_CORRELATION_HOLD_MS: "250", REDIS_COMMAND_TIMEOUT_MS: "500" }).exchange.recordHoldMs, 250);
  });

  it("without XMPP_COMPONENT_SECRET throws a ConfigError naming it", () => {
    const err = expectConfigError(() => loadConfig({}));
    assert.equal(err.problems.length, 1);
    assert.equal(linesFor(err, "XMPP_COMPONENT_SECRET").length, 1);
  });

  it("takes the Redis user, password and CA; a CA without rediss:// is a problem", () => {
    const config = loadConfig({ ...SECRET, REDIS_URL: "rediss://cache:6380", REDIS_USERNAME: "gw", REDIS_PASSWORD: "pw" });
    assert.deepEqual([config.redis.username, config.redis.password], ["gw", "pw"]);
    const err = expectConfigError(() => loadConfig({ ...SECRET, REDIS_TLS_CA_FILE: "/nonexistent/ca.pem" }));
    assert.deepEqual(
      err.problems.map((p) => p.split(/[ =]/)[0]),
      ["REDIS_TLS_CA_FILE", "REDIS_TLS_CA_FILE"],
    );
  });

  it("Sentinel mode: sentinels, name, their password (or _FILE) and TLS; the data nodes' user and password as for one node", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "sentinel-"));
    try {
      const file = path.join(dir, "sentinel-password");
      writeFileSync(file, "sentinel-pw\n");
      const ca = path.join(dir, "ca.pem");
      writeFileSync(ca, "PEM");
      const config = loadConfig({
        ...SECRET,
        REDIS_SENTINELS: " s1.example.com:26379, 10.0.0.2:26380,[::1]:26381 ",
        REDIS_SENTINEL_NAME: "gateway",
        REDIS_SENTINEL_PASSWORD_FILE: file,
        REDIS_SENTINEL_TLS: "on",
        REDIS_TLS_CA_FILE: ca,
        REDIS_USERNAME: "gw",
        REDIS_PASSWORD: "data-pw",
      });
      assert.deepEqual(config.redis.sentinel, {
        name: "gateway",
        sentinels: [
          { host: "s1.example.com", port: 26379 },
          { host: "10.0.0.2", port: 26380 },
          { host: "::1", port: 26381 },
        ],
        password: "sentinel-pw",
        tls: true,
      });
      assert.deepEqual([config.redis.username, config.redis.password, config.redis.tlsCa], ["gw", "data-pw", "PEM"]);
      // Without a Sentinel password or TLS: neither is set.
      const plain = loadConfig({ ...SECRET, REDIS_SENTINELS: "127.0.0.1:26379", REDIS_SENTINEL_NAME: "m" });
      assert.deepEqual(plain.redis.sentinel, { name: "m", sentinels: [{ host: "127.0.0.1", port: 26379 }], tls: false });
      // One node: no sentinel at all.
      assert.equal(loadConfig(SECRET).redis.sentinel, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Sentinel mode: REDIS_URL beside REDIS_SENTINELS, a missing name, stray Sentinel settings are configuration errors", () => {
    const both = expectConfigError(() =>
      loadConfig({ ...SECRET, REDIS_URL: "redis://cache:6379", REDIS_SENTINELS: "s1:26379", REDIS_SENTINEL_NAME: "m" }),
    );
    assert.deepEqual(both.problems, [
      "REDIS_URL and REDIS_SENTINELS are both set: keep REDIS_URL for one node or REDIS_SENTINELS for Sentinel mode",
    ]);
    const noName = expectConfigError(() => loadConfig({ ...SECRET, REDIS_SENTINELS: "s1:26379" }));
    assert.equal(linesFor(noName, "REDIS_SENTINEL_NAME").length, 1);
    const stray = expectConfigError(() =>
      loadConfig({ ...SECRET, REDIS_SENTINEL_NAME: "m", REDIS_SENTINEL_PASSWORD: "hunter2", REDIS_SENTINEL_TLS: "on" }),
    );
    assert.deepEqual(
      stray.problems.map((p) => p.split(" ")[0]),
      ["REDIS_SENTINEL_NAME", "REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_TLS"],
    );
    assert.ok(!stray.message.includes("hunter2"), stray.message);
    const caWithoutTls = expectConfigError(() =>
      loadConfig({ ...SECRET, REDIS_SENTINELS: "s1:26379", REDIS_SENTINEL_NAME: "m", REDIS_TLS_CA_FILE: "/nonexistent/ca.pem" }),
    );
    assert.ok(
      caWithoutTls.problems.some((p) => p.includes("REDIS_SENTINEL_TLS is not on")),
      caWithoutTls.message,
    );
    const badTls = expectConfigError(() =>
      loadConfig({ ...SECRET, REDIS_SENTINELS: "s1:26379", REDIS_SENTINEL_NAME: "m", REDIS_SENTINEL_TLS: "yes" }),
    );
    assert.equal(linesFor(badTls, "REDIS_SENTINEL_TLS").length, 1);
  });

  for (const [list, entry] of [
    ["s1:26379,s2", "s2"],
    ["s1:26379,s2:0", "s2:0"],
    ["s1:26379,s2:65536", "s2:65536"],
    ["s1:26379,,s2:26379", ""],
    ["s1:26379,", ""],
    ["::1:26379", "::1:26379"],
    ["s1:26379,s 2:26379", "s 2:26379"],
    ["redis://s1:26379", "redis://s1:26379"],
    ["s1:port", "s1:port"],
  ] as const) {
    it(`Sentinel mode: REDIS_SENTINELS=${JSON.stringify(list)} is refused, naming ${JSON.stringify(entry)}`, () => {
      const err = expectConfigError(() => loadConfig({ ...SECRET, REDIS_SENTINELS: list, REDIS_SENTINEL_NAME: "m" }));
      assert.deepEqual(err.problems, [`REDIS_SENTINELS has ${JSON.stringify(entry)}, which is not host:port (port 1 to 65535)`]);
    });
  }

  it("Cluster mode: seed nodes and TLS; user, password and CA as for one node", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cluster-"));
    try {
      const ca = path.join(dir, "ca.pem");
      writeFileSync(ca, "PEM");
      const config = loadConfig({
        ...SECRET,
        REDIS_CLUSTER_NODES: " n1.example.com:6379, 10.0.0.2:6380,[::1]:6381 ",
        REDIS_CLUSTER_TLS: "on",
        REDIS_TLS_CA_FILE: ca,
        REDIS_USERNAME: "gw",
        REDIS_PASSWORD: "data-pw",
      });
      assert.deepEqual(config.redis.cluster, {
        nodes: [
          { host: "n1.example.com", port: 6379 },
          { host: "10.0.0.2", port: 6380 },
          { host: "::1", port: 6381 },
        ],
        tls: true,
      });
      assert.equal(config.redis.sentinel, undefined);
      assert.deepEqual([config.redis.username, config.redis.password, config.redis.tlsCa], ["gw", "data-pw", "PEM"]);
      const plain = loadConfig({ ...SECRET, REDIS_CLUSTER_NODES: "127.0.0.1:7000" });
      assert.deepEqual(plain.redis.cluster, { nodes: [{ host: "127.0.0.1", port: 7000 }], tls: false });
      // A prefix without braces is kept; one node has no cluster at all.
      assert.equal(loadConfig({ ...SECRET, REDIS_CLUSTER_NODES: "n1:7000", REDIS_KEY_PREFIX: "app:gw:" }).redis.keyPrefix, "app:gw:");
      assert.equal(loadConfig(SECRET).redis.cluster, undefined);
      // Braces in the prefix matter only to a Cluster.
      assert.equal(loadConfig({ ...SECRET, REDIS_KEY_PREFIX: "{gw}:" }).redis.keyPrefix, "{gw}:");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Cluster mode: REDIS_URL or REDIS_SENTINELS beside it, a braced prefix, TLS or a CA without it are configuration errors", () => {
    const withUrl = expectConfigError(() => loadConfig({ ...SECRET, REDIS_URL: "redis://cache:6379", REDIS_CLUSTER_NODES: "n1:7000" }));
    assert.deepEqual(withUrl.problems, [
      "REDIS_URL and REDIS_CLUSTER_NODES are both set: keep REDIS_URL for one node or REDIS_CLUSTER_NODES for Cluster mode",
    ]);
    const withSentinels = expectConfigError(() =>
      loadConfig({ ...SECRET, REDIS_SENTINELS: "s1:26379", REDIS_SENTINEL_NAME: "m", REDIS_CLUSTER_NODES: "n1:7000" }),
    );
    assert.deepEqual(withSentinels.problems, [
      "REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set: a deployment is either Sentinel or Cluster",
    ]);
    for (const prefix of ["{gw}:", "gw{:", "gw}:"]) {
      const braced = expectConfigError(() => loadConfig({ ...SECRET, REDIS_CLUSTER_NODES: "n1:7000", REDIS_KEY_PREFIX: prefix }));
      assert.deepEqual(braced.problems, [
        `REDIS_KEY_PREFIX=${JSON.stringify(prefix)} has { or }, which in Cluster mode would capture the keys' hash tags`,
      ]);
    }
    const stray = expectConfigError(() => loadConfig({ ...SECRET, REDIS_CLUSTER_TLS: "on" }));
    assert.deepEqual(stray.problems, ["REDIS_CLUSTER_TLS is set but REDIS_CLUSTER_NODES is not: it would do nothing"]);
    const caWithoutTls = expectConfigError(() =>
      loadConfig({ ...SECRET, REDIS_CLUSTER_NODES: "n1:7000", REDIS_TLS_CA_FILE: "/nonexistent/ca.pem" }),
    );
    assert.ok(
      caWithoutTls.problems.some((p) => p.includes("REDIS_CLUSTER_TLS is not on")),
      caWithoutTls.message,
    );
    const badTls = expectConfigError(() => loadConfig({ ...SECRET, REDIS_CLUSTER_NODES: "n1:7000", REDIS_CLUSTER_TLS: "yes" }));
    assert.equal(linesFor(badTls, "REDIS_CLUSTER_TLS").length, 1);
    const badNode = expectConfigError(() => loadConfig({ ...SECRET, REDIS_CLUSTER_NODES: "n1:7000,n2" }));
    assert.deepEqual(badNode.problems, ['REDIS_CLUSTER_NODES has "n2", which is not host:port (port 1 to 65535)']);
  });

  it("treats a whitespace-only secret as unset", () => {
    const err = expectConfigError(() => loadConfig({ XMPP_COMPONENT_SECRET: "  \t " }));
    assert.equal(linesFor(err, "XMPP_COMPONENT_SECRET").length, 1);
  });

  it("treats whitespace-only values as unset and uses the defaults", () => {
    const blank = "   ";
    const config = loadConfig({
      ...SECRET,
      GATEWAY_PORT: blank,
      GATEWAY_HOST: blank,
      REDIS_URL: blank,
      XMPP_COMPONENT_DOMAIN: blank,
      DEVICE_JID_TEMPLATE: blank,
      GATEWAY_REQUEST_TIMEOUT_MS: blank,
      GATEWAY_INSTANCE_ID: blank,
      LOG_LEVEL: blank,
    });
    assert.equal(config.http.port, 8080);
    assert.equal(config.http.host, "0.0.0.0");
    assert.equal(config.redis.url, "redis://127.0.0.1:6379");
    assert.equal(config.xmpp.domain, "gateway.localhost");
    assert.equal(config.devices.jidTemplate, "{id}@localhost/agent");
    assert.equal(config.exchange.timeoutMs, 30_000);
    assert.equal(config.instanceId, `${hostname()}-${process.pid}`);
    assert.equal(config.logLevel, "info");
  });

  it("trims values around real content", () => {
    const config = loadConfig({ ...SECRET, GATEWAY_PORT: " 9000 ", LOG_LEVEL: " warn " });
    assert.equal(config.http.port, 9000);
    assert.equal(config.logLevel, "warn");
  });

  it("reports every bad value at once, one line per variable", () => {
    const err = expectConfigError(() =>
      loadConfig({
        GATEWAY_PORT: "70000",
        GATEWAY_MAX_BODY_BYTES: "abc",
        GATEWAY_REQUEST_TIMEOUT_MS: "-5",
        REDIS_URL: "http://127.0.0.1:6379",
        XMPP_COMPONENT_SERVICE: "tcp://127.0.0.1:5347",
        DEVICE_JID_TEMPLATE: "dev@localhost/agent",
        LOG_LEVEL: "verbose",
      }),
    );
    const names = [
      "GATEWAY_PORT",
      "GATEWAY_MAX_BODY_BYTES",
      "GATEWAY_REQUEST_TIMEOUT_MS",
      "REDIS_URL",
      "XMPP_COMPONENT_SERVICE",
      "DEVICE_JID_TEMPLATE",
      "LOG_LEVEL",
      "XMPP_COMPONENT_SECRET",
    ];
    assert.equal(err.problems.length, names.length, err.problems.join("\n"));
    for (const name of names) assert.equal(linesFor(err, name).length, 1, `one line for ${name}:\n${err.message}`);
    // The offending value is quoted in the line.
    assert.ok(linesFor(err, "GATEWAY_PORT")[0]?.includes('"70000"'));
    assert.ok(linesFor(err, "REDIS_URL")[0]?.includes("http://127.0.0.1:6379"));
  });

  for (const [label, value] of [
    ["above 65535", "70000"],
    ["not a number", "abc"],
    ["negative", "-1"],
    ["fractional", "80.5"],
  ] as const) {
    it(`rejects GATEWAY_PORT ${label} (${value})`, () => {
      const err = expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_PORT: value }));
      assert.equal(err.problems.length, 1);
      assert.equal(linesFor(err, "GATEWAY_PORT").length, 1);
    });
  }

  it("accepts GATEWAY_PORT 0 (any free port) and 65535", () => {
    assert.equal(loadConfig({ ...SECRET, GATEWAY_PORT: "0" }).http.port, 0);
    assert.equal(loadConfig({ ...SECRET, GATEWAY_PORT: "65535" }).http.port, 65535);
  });

  it("accepts rediss:// and rejects other schemes for REDIS_URL", () => {
    assert.equal(loadConfig({ ...SECRET, REDIS_URL: "rediss://h:6380" }).redis.url, "rediss://h:6380");
    for (const bad of ["http://h:6379", "h:6379x", "not a url"]) {
      const err = expectConfigError(() => loadConfig({ ...SECRET, REDIS_URL: bad }));
      assert.equal(linesFor(err, "REDIS_URL").length, 1, bad);
    }
  });

  for (const [label, template] of [
    ["without {id}", "dev@localhost/agent"],
    ["without a resource", "{id}@localhost"],
    ["with an empty resource", "{id}@localhost/"],
    ["without a domain", "{id}/agent"],
    ["with {id} in the domain", "dev@{id}.localhost/agent"],
    ["with {id} only in the resource", "dev@localhost/{id}"],
  ] as const) {
    it(`rejects DEVICE_JID_TEMPLATE ${label}`, () => {
      const err = expectConfigError(() => loadConfig({ ...SECRET, DEVICE_JID_TEMPLATE: template }));
      assert.equal(err.problems.length, 1, err.message);
      assert.equal(linesFor(err, "DEVICE_JID_TEMPLATE").length, 1);
    });
  }

  it("accepts DEVICE_JID_TEMPLATE with a prefix and suffix around {id}", () => {
    const t = "meter-{id}-v2@devices.example.com/agent";
    assert.equal(loadConfig({ ...SECRET, DEVICE_JID_TEMPLATE: t }).devices.jidTemplate, t);
  });

  it("rejects a bad LOG_LEVEL and accepts every pino level", () => {
    const err = expectConfigError(() => loadConfig({ ...SECRET, LOG_LEVEL: "verbose" }));
    assert.equal(linesFor(err, "LOG_LEVEL").length, 1);
    for (const level of ["trace", "debug", "info", "warn", "error", "fatal", "silent"]) {
      assert.equal(loadConfig({ ...SECRET, LOG_LEVEL: level }).logLevel, level);
    }
  });

  it("rejects an XMPP_COMPONENT_DOMAIN that is not a domain name", () => {
    const err = expectConfigError(() => loadConfig({ ...SECRET, XMPP_COMPONENT_DOMAIN: "gateway local" }));
    assert.equal(linesFor(err, "XMPP_COMPONENT_DOMAIN").length, 1);
  });

  it("keeps chunk sizes within XEP-0332's 256..65536 and the threshold within 128 KiB", () => {
    for (const [name, value] of [
      ["GATEWAY_CHUNK_SIZE_BYTES", "255"],
      ["GATEWAY_CHUNK_SIZE_BYTES", "65537"],
      ["GATEWAY_CHUNK_THRESHOLD_BYTES", String(128 * 1024 + 1)],
      ["GATEWAY_REQUEST_TIMEOUT_MS", "0"],
      ["REDIS_COMMAND_TIMEOUT_MS", "49"],
      ["REDIS_WAIT_REPLICAS", "-1"],
      ["REDIS_WAIT_TIMEOUT_MS", "0"],
    ] as const) {
      const err = expectConfigError(() => loadConfig({ ...SECRET, [name]: value }));
      assert.equal(linesFor(err, name).length, 1, `${name}=${value}`);
    }
    const ok = loadConfig({ ...SECRET, GATEWAY_CHUNK_SIZE_BYTES: "256", GATEWAY_CHUNK_THRESHOLD_BYTES: "131072" });
    assert.equal(ok.exchange.chunkSizeBytes, 256);
    assert.equal(ok.exchange.chunkThresholdBytes, 131_072);
  });
});
