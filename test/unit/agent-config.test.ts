/**
 * The device agent's configuration: one identity from the environment, or a fleet from AGENT_FLEET_FILE
 * (a JSON array) sharing the other settings. Fleet files are written to a temporary directory.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadAgentConfig } from "../../adapters/device-agent/config.js";
import { expectConfigError } from "../helpers/thrown.js";

const IDENTITY = { AGENT_USERNAME: "dev-17", AGENT_PASSWORD: "pw17" };

describe("loadAgentConfig: one identity from the environment", () => {
  it("has the documented defaults", () => {
    const config = loadAgentConfig(IDENTITY);
    assert.deepEqual(config, {
      agents: [
        {
          service: "xmpp://127.0.0.1:5222",
          domain: "localhost",
          gatewayJid: "gateway.localhost",
          localTimeoutMs: 25_000,
          presenceIntervalMs: 60_000,
          maxBodyBytes: 10_485_760,
          chunkThresholdBytes: 65_536,
          chunkSizeBytes: 32_768,
          username: "dev-17",
          password: "pw17",
          resource: "agent",
          localUrl: "http://127.0.0.1:80",
        },
      ],
      logLevel: "info",
      tracing: undefined,
    });
    assert.equal("saslMechanism" in (config.agents[0] ?? {}), false);
  });

  it("reads every variable when set", () => {
    const config = loadAgentConfig({
      ...IDENTITY,
      AGENT_SERVICE: "xmpps://xmpp.example.com:5223",
      AGENT_DOMAIN: "devices.example.com",
      AGENT_RESOURCE: "bulb",
      AGENT_GATEWAY_JID: "gw.example.com",
      AGENT_LOCAL_TIMEOUT_MS: "1000",
      AGENT_PRESENCE_INTERVAL_S: "15",
      AGENT_MAX_BODY_BYTES: "2048",
      AGENT_CHUNK_THRESHOLD_BYTES: "1024",
      AGENT_CHUNK_SIZE_BYTES: "512",
      AGENT_SASL_MECHANISM: "SCRAM-SHA-1",
      AGENT_LOCAL_URL: "https://10.0.0.17:8443",
      LOG_LEVEL: "debug",
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
    });
    assert.deepEqual(config, {
      agents: [
        {
          service: "xmpps://xmpp.example.com:5223",
          domain: "devices.example.com",
          gatewayJid: "gw.example.com",
          localTimeoutMs: 1000,
          presenceIntervalMs: 15_000,
          maxBodyBytes: 2048,
          chunkThresholdBytes: 1024,
          chunkSizeBytes: 512,
          saslMechanism: "SCRAM-SHA-1",
          username: "dev-17",
          password: "pw17",
          resource: "bulb",
          localUrl: "https://10.0.0.17:8443",
        },
      ],
      logLevel: "debug",
      tracing: { serviceName: "device-agent", url: "http://localhost:4318/v1/traces", protocol: "http/json" },
    });
  });

  it("reports a missing username and password together", () => {
    const err = expectConfigError(() => loadAgentConfig({}));
    assert.equal(err.problems.length, 2, err.message);
    assert.ok(err.problems.some((p) => p.startsWith("AGENT_USERNAME")));
    assert.ok(err.problems.some((p) => p.startsWith("AGENT_PASSWORD")));
  });

  it("treats a whitespace-only password as missing", () => {
    const err = expectConfigError(() => loadAgentConfig({ AGENT_USERNAME: "d", AGENT_PASSWORD: "  " }));
    assert.deepEqual(
      err.problems.map((p) => p.split(/[ =]/)[0]),
      ["AGENT_PASSWORD"],
    );
  });

  it("reports bad service, local URL, numbers and SASL mechanism, each naming its variable", () => {
    const err = expectConfigError(() =>
      loadAgentConfig({
        ...IDENTITY,
        AGENT_SERVICE: "http://xmpp:5222",
        AGENT_LOCAL_URL: "ftp://10.0.0.17",
        AGENT_LOCAL_TIMEOUT_MS: "0",
        AGENT_CHUNK_SIZE_BYTES: "100",
        AGENT_SASL_MECHANISM: "MD5",
      }),
    );
    const names = ["AGENT_SERVICE", "AGENT_LOCAL_URL", "AGENT_LOCAL_TIMEOUT_MS", "AGENT_CHUNK_SIZE_BYTES", "AGENT_SASL_MECHANISM"];
    assert.equal(err.problems.length, names.length, err.message);
    for (const name of names) assert.equal(err.problems.filter((p) => p.startsWith(`${name}=`)).length, 1, name);
  });

  it("takes a comma-separated AGENT_SERVICE list and xmpp-srv:// domains as they are (servers.ts reads them)", () => {
    const service = "xmpp://node1.example.com:5222, xmpps://node2.example.com:5223,xmpp-srv://example.com";
    assert.equal(loadAgentConfig({ ...IDENTITY, AGENT_SERVICE: service }).agents[0]?.service, service);
  });

  it("reports an AGENT_SERVICE list with a bad entry, once, naming the variable", () => {
    for (const service of ["xmpp://a:5222,http://b:80", "xmpp://a:5222,", "xmpp-srv://example.com:5222"]) {
      const err = expectConfigError(() => loadAgentConfig({ ...IDENTITY, AGENT_SERVICE: service }));
      assert.equal(err.problems.length, 1, err.message);
      assert.match(err.problems[0]!, /^AGENT_SERVICE=.* comma-separated/);
    }
  });

  it("never echoes a password given in an AGENT_SERVICE entry", () => {
    const err = expectConfigError(() => loadAgentConfig({ ...IDENTITY, AGENT_SERVICE: "xmpp://a:5222,http://u:s3cret@b:80" }));
    assert.equal(err.problems.length, 1, err.message);
    assert.doesNotMatch(err.message, /s3cret/);
    assert.match(err.problems[0]!, /^AGENT_SERVICE=.*u:\*\*\*@b/);
  });

  it("refuses AGENT_TLS=off with an xmpps:// entry anywhere in the list, not with xmpp:// or xmpp-srv:// ones", () => {
    const err = expectConfigError(() =>
      loadAgentConfig({ ...IDENTITY, AGENT_SERVICE: "xmpp://127.0.0.1:5222,xmpps://127.0.0.1:5223", AGENT_TLS: "off" }),
    );
    assert.ok(
      err.problems.some((p) => p.startsWith("AGENT_TLS=off cannot apply")),
      err.message,
    );
    assert.equal(
      loadAgentConfig({ ...IDENTITY, AGENT_SERVICE: "xmpp://127.0.0.1:5222,xmpp-srv://example.com", AGENT_TLS: "off" }).agents[0]?.tls
        ?.mode,
      "off",
    );
    assert.equal(
      loadAgentConfig({ ...IDENTITY, AGENT_SERVICE: "xmpp://10.0.0.1:5222,xmpp://10.0.0.2:5222", AGENT_TLS: "off" }).agents[0]?.tls?.mode,
      "off",
    );
  });

  it("reports a bad LOG_LEVEL as a ConfigError", () => {
    expectConfigError(() => loadAgentConfig({ ...IDENTITY, LOG_LEVEL: "verbose" }));
  });
});

describe("loadAgentConfig: AGENT_FLEET_FILE", () => {
  let dir = "";
  let n = 0;
  function fleetFile(content: string): string {
    const file = join(dir, `fleet-${n++}.json`);
    writeFileSync(file, content);
    return file;
  }

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "agent-fleet-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("gives one agent per entry, all sharing the other settings", () => {
    const file = fleetFile(
      JSON.stringify([
        { username: "dev-1", password: "p1", localUrl: "http://10.0.0.1:8080" },
        { username: "dev-2", password: "p2", localUrl: "http://10.0.0.2:8080", resource: "bulb" },
        { username: "dev-3", password: "p3", localUrl: "http://10.0.0.3:8080" },
      ]),
    );
    const config = loadAgentConfig({
      AGENT_FLEET_FILE: file,
      AGENT_DOMAIN: "devices.example.com",
      AGENT_RESOURCE: "meter",
      AGENT_LOCAL_TIMEOUT_MS: "5000",
    });
    assert.equal(config.agents.length, 3);
    assert.deepEqual(
      config.agents.map((a) => [a.username, a.password, a.localUrl, a.resource]),
      [
        ["dev-1", "p1", "http://10.0.0.1:8080", "meter"],
        ["dev-2", "p2", "http://10.0.0.2:8080", "bulb"],
        ["dev-3", "p3", "http://10.0.0.3:8080", "meter"],
      ],
    );
    for (const a of config.agents) {
      assert.equal(a.domain, "devices.example.com");
      assert.equal(a.localTimeoutMs, 5000);
      assert.equal(a.service, "xmpp://127.0.0.1:5222");
      assert.equal(a.gatewayJid, "gateway.localhost");
    }
  });

  it("does not require AGENT_USERNAME/AGENT_PASSWORD, and ignores them", () => {
    const file = fleetFile(JSON.stringify([{ username: "dev-9", password: "p9", localUrl: "http://10.0.0.9" }]));
    const config = loadAgentConfig({ AGENT_FLEET_FILE: file, AGENT_USERNAME: "other", AGENT_PASSWORD: "x" });
    assert.deepEqual(
      config.agents.map((a) => a.username),
      ["dev-9"],
    );
  });

  it("reports malformed JSON naming AGENT_FLEET_FILE", () => {
    const file = fleetFile('[{"username": "dev-1",');
    const err = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: file }));
    assert.equal(err.problems.length, 1);
    assert.ok(err.problems[0]?.startsWith("AGENT_FLEET_FILE="));
    assert.ok(err.problems[0]?.includes(file));
  });

  it("reports a file that does not exist", () => {
    const file = join(dir, "missing.json");
    const err = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: file }));
    assert.equal(err.problems.length, 1);
    assert.ok(err.problems[0]?.startsWith("AGENT_FLEET_FILE="));
  });

  it("reports an empty array, and a JSON value that is not an array", () => {
    for (const content of ["[]", '{"username":"dev-1"}', '"dev-1"']) {
      const err = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: fleetFile(content) }));
      assert.equal(err.problems.length, 1, content);
      assert.match(err.problems[0] ?? "", /^AGENT_FLEET_FILE=.*non-empty JSON array/, content);
    }
  });

  it("reports each entry's missing or empty fields, naming the entry and the field", () => {
    const file = fleetFile(
      JSON.stringify([
        { username: "dev-0", password: "p0", localUrl: "http://10.0.0.1" },
        { username: "dev-1" },
        { username: "dev-2", password: "p2", localUrl: "" },
        { username: 3, password: "p3", localUrl: "http://10.0.0.3" },
      ]),
    );
    const err = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: file }));
    assert.deepEqual(err.problems, [
      'AGENT_FLEET_FILE entry 1: "password" is required',
      'AGENT_FLEET_FILE entry 1: "localUrl" is required',
      'AGENT_FLEET_FILE entry 2: "localUrl" is required',
      'AGENT_FLEET_FILE entry 3: "username" is required',
    ]);
  });

  it("reports a null entry as a ConfigError", () => {
    const file = fleetFile(JSON.stringify([{ username: "dev-0", password: "p0", localUrl: "http://10.0.0.1" }, null]));
    const err = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: file }));
    assert.ok(err.problems.some((p) => p.includes("entry 1")));
  });

  it("reports an entry whose localUrl is not an http(s) URL", () => {
    const file = fleetFile(JSON.stringify([{ username: "dev-0", password: "p0", localUrl: "10.0.0.1:8080" }]));
    const err = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: file }));
    assert.ok(err.problems.some((p) => p.includes("entry 0") && p.includes("localUrl")));
  });

  it("reports fleet problems together with bad shared settings", () => {
    const file = fleetFile(JSON.stringify([{ password: "p", localUrl: "http://h" }]));
    const err = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: file, AGENT_SERVICE: "tcp://h" }));
    assert.equal(err.problems.length, 2, err.message);
    assert.ok(err.problems.some((p) => p.startsWith("AGENT_SERVICE=")));
    assert.ok(err.problems.some((p) => p.includes("entry 0") && p.includes('"username"')));
  });
});
