// The device agent's link to the XMPP server under TLS: STARTTLS (RFC 6120 §5) to a Prosody that requires
// it, with a throwaway CA and a certificate for localhost; direct TLS (XEP-0368) through a TLS terminator;
// and the refusals: a certificate the agent cannot verify (no CA, another CA, another name) and a server
// that offers no STARTTLS, neither of which ever ends in a plain-text login.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { DeviceAgent, type AgentOptions } from "../../adapters/device-agent/agent.js";
import { loadAgentConfig } from "../../adapters/device-agent/config.js";
import { defaultTlsMode, isLoopbackHost } from "../../adapters/device-agent/tls.js";
import type { Env } from "../../lib/env.js";
import { pollUntil } from "../../local-stack/ports.js";
import { spawnChild } from "../../local-stack/process.js";
import { luaString, startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import {
  issueServerCertificate,
  makeCertificateAuthority,
  type CertificateAuthority,
  type ServerCertificate,
} from "../helpers/certificates.js";
import { echoDevice, sha256 } from "../helpers/echo-device.js";
import { agentOptions, startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startDeviceServer, type DeviceServer } from "../helpers/http-device.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";
import { expectConfigError } from "../helpers/thrown.js";

/** OpenSSL's verdicts on a chain that ends at no trusted root (which one depends on what the server sends). */
const UNTRUSTED =
  /^TlsError: TLS with localhost failed, not connecting: .*\((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN|CERT_SIGNATURE_FAILURE)\)$/;

/** What an agent reported: every `online` and every `error` (the supervisor's, with the error's text). */
interface Recorded {
  online: number;
  errors: string[];
}

function recordingLog(rec: Recorded) {
  return {
    info: (fields: Record<string, unknown>) => {
      if (fields.event === "online") rec.online++;
    },
    warn: (fields: Record<string, unknown>) => {
      if (fields.event === "error") rec.errors.push(String(fields.err));
    },
  };
}

/**
 * A TLS terminator in front of a plain-text c2s port, as stunnel or HAProxy (`ssl`) would be: the agent
 * speaks direct TLS (XEP-0368) to it. Records the ALPN protocol each client asked for.
 */
async function startTlsTerminator(certificate: ServerCertificate, backendPort: number) {
  const pem = { cert: await readFile(certificate.certFile, "utf8"), key: await readFile(certificate.keyFile, "utf8") };
  const sockets = new Set<net.Socket>();
  const alpn: Array<string | false | null> = [];
  const server = tls.createServer({ cert: pem.cert, key: pem.key, ALPNProtocols: ["xmpp-client"] }, (front) => {
    alpn.push(front.alpnProtocol);
    const back = net.connect(backendPort, "127.0.0.1");
    for (const s of [front, back]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => [front, back].forEach((x) => x.destroy()));
    }
    front.pipe(back).pipe(front);
  });
  server.on("tlsClientError", () => undefined); // the refusals under test end handshakes on purpose
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    alpn,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("device agent over TLS", () => {
  const teardown = new Teardown();
  let dir: string;
  let ca: CertificateAuthority;
  /** Another CA, under the same name as the real one: only its key differs. */
  let rogue: CertificateAuthority;
  let stack: Stack;
  let gw: RunningGateway;
  /** A Prosody without a certificate: no STARTTLS, plain-text PLAIN accepted. */
  let plain: ProsodyServer;
  let device: DeviceServer;

  before(async () => {
    dir = await makeTempDir("agent-tls-");
    teardown.add("pki dir", () => removeDir(dir));
    [ca, rogue] = await Promise.all([
      makeCertificateAuthority(dir, "ca", "Agent TLS test CA"),
      makeCertificateAuthority(dir, "rogue", "Agent TLS test CA"),
    ]);
    const server = await issueServerCertificate(ca, dir, "server", { dns: ["localhost"], ip: ["127.0.0.1"] });
    const [s, p] = await Promise.all([
      startStack({ prosody: { tls: { certFile: server.certFile, keyFile: server.keyFile } } }),
      startProsody(),
    ]);
    stack = teardown.stopLater("stack", s);
    plain = teardown.stopLater("plain prosody", p);
    gw = teardown.stopLater("gateway", await startGateway(stack));
    device = teardown.stopLater("device", await startDeviceServer(echoDevice("tls-device")));
  });
  after(() => teardown.run());

  /** An agent with a recording log, quick retries, and the TLS settings given; stopped at teardown. */
  async function agentFor(
    server: Pick<ProsodyServer, "service" | "vhost" | "components" | "createUsers">,
    id: string,
    overrides: Partial<AgentOptions>,
  ) {
    await server.createUsers([{ username: id, password: `pw-${id}` }]);
    const rec: Recorded = { online: 0, errors: [] };
    const agent = new DeviceAgent(agentOptions(server, id, device.url, { backoff: { initialMs: 20, maxMs: 200 }, ...overrides }), {
      log: recordingLog(rec),
    });
    teardown.stopLater(`agent ${id}`, agent);
    await agent.start();
    return { agent, rec };
  }

  /**
   * Several attempts, each refused on the same grounds: never online, and no session on the server (asked
   * while the agent still retries, when given); then the agent stops retrying.
   */
  async function expectRefused(agent: DeviceAgent, rec: Recorded, pattern: RegExp, server?: ProsodyServer): Promise<void> {
    await pollUntil("three refused attempts", () => rec.errors.length >= 3, { timeoutMs: 15_000 });
    if (server) assert.equal(await sessionSecurity(server, agent.jid), undefined, "no session on the server");
    // The agent retries meanwhile: stop() may cut an attempt mid-handshake, and that attempt then reports the
    // socket closed under it ("disconnected before secure TLS connection"), an end of our own making. The
    // attempts that ended by themselves are the ones that must all have been refused on these grounds.
    const refused = [...rec.errors];
    await agent.stop();
    assert.equal(rec.online, 0, "never online");
    assert.ok(refused.length >= 3);
    for (const err of refused) assert.match(err, pattern);
  }

  /** Prosody's own view of a session: its TLS version (`TLSv1.3`), `insecure`, or undefined when there is none. */
  async function sessionSecurity(server: ProsodyServer, fullJid: string): Promise<string | undefined> {
    // A table: `| JID | Session ID | Security | Encryption`, one row per session, JIDs cut at 32 characters.
    assert.ok(fullJid.length <= 32, `${fullJid} is too long for Prosody's session table`);
    const out = await server.shell([`c2s:show_tls(${luaString(fullJid)})`]);
    const row = out
      .split("\n")
      .map((l) => l.split("|").map((cell) => cell.trim()))
      .find((cells) => cells[1] === fullJid);
    return row?.[3];
  }

  it("renders a Prosody configuration that passes prosodyctl check config", () => {
    const check = spawnSync("prosodyctl", ["--config", stack.prosody.configPath, "check", "config"], { encoding: "utf8", timeout: 20_000 });
    assert.equal(check.status, 0, `${check.stdout}\n${check.stderr}`);
    assert.match(check.stdout, /All checks passed/);
  });

  it("connects with STARTTLS when it trusts the CA, and the gateway's requests reach the device through it", async () => {
    const fleet = teardown.stopLater(
      "fleet",
      await startFleet(stack.prosody, ["tls-dev"], echoDevice, { tls: { mode: "required", ca: ca.pem } }),
    );
    const agent = fleet.byId("tls-dev").agent;
    assert.match(agent.tlsProtocol ?? "none", /^TLSv1\.[23]$/, "the agent's socket is a TLS socket");
    assert.match((await sessionSecurity(stack.prosody, agent.jid)) ?? "no session", /^TLSv1\.[23]$/, "Prosody sees an encrypted session");

    const res = await fetch(`${gw.url}/devices/tls-dev/TEMPERATURE?unit=c`);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { url: string }).url, "/TEMPERATURE?unit=c");

    // TLS records (16 KiB at most) split the stream anywhere, multi-byte characters included: the agent
    // decodes across them, as it does across TCP reads.
    const text = "température 🌡 ".repeat(3000); // about 57 KB of UTF-8, under the chunk threshold
    const echoed = await fetch(`${gw.url}/devices/tls-dev/echo`, {
      method: "POST",
      headers: { "Content-Type": "text/plain; charset=utf-8" },
      body: text,
    });
    assert.equal(echoed.status, 200);
    assert.equal(sha256(await echoed.text()), sha256(text), "the text came back whole");
  });

  it("refuses a server whose certificate chains to no CA it trusts (Node's roots only), and never logs in", async () => {
    const { agent, rec } = await agentFor(stack.prosody, "no-ca", { tls: { mode: "required" } });
    await expectRefused(agent, rec, UNTRUSTED, stack.prosody);
  });

  it("refuses a certificate from another CA, even one with the same name", async () => {
    const { agent, rec } = await agentFor(stack.prosody, "rogue-ca", { tls: { mode: "required", ca: rogue.pem } });
    await expectRefused(agent, rec, UNTRUSTED, stack.prosody);
  });

  it("with TLS required, refuses a server that offers no STARTTLS, though it would accept plain text", async () => {
    const { agent, rec } = await agentFor(plain, "no-starttls", { tls: { mode: "required" } });
    await expectRefused(agent, rec, /^TlsError: the server offers no STARTTLS/, plain);
    // Another account on the same server, plain text allowed (the default on loopback): the server lets it
    // in, so the refusal above was the agent's own.
    const control = await agentFor(plain, "plain-ok", {});
    await control.agent.waitOnline(10_000);
    assert.equal(control.agent.tlsProtocol, undefined);
    assert.equal(await sessionSecurity(plain, control.agent.jid), "insecure");
  });

  it("with TLS off (the loopback default), says that the server requires STARTTLS rather than failing to log in", async () => {
    const { agent, rec } = await agentFor(stack.prosody, "tls-off", {});
    await expectRefused(agent, rec, /^TlsError: the server requires STARTTLS but TLS is off/, stack.prosody);
  });

  describe("direct TLS (xmpps://, XEP-0368) through a TLS terminator", () => {
    let good: Awaited<ReturnType<typeof startTlsTerminator>>;
    let wrongName: Awaited<ReturnType<typeof startTlsTerminator>>;

    before(async () => {
      const localhost = await issueServerCertificate(ca, dir, "direct", { dns: ["localhost"] });
      const other = await issueServerCertificate(ca, dir, "other-name", { dns: ["xmpp.example.net"] });
      good = teardown.stopLater("terminator", await startTlsTerminator(localhost, plain.c2sPort));
      wrongName = teardown.stopLater("terminator (other name)", await startTlsTerminator(other, plain.c2sPort));
    });

    it("connects, asking for ALPN xmpp-client, and logs in over it", async () => {
      const { agent } = await agentFor(plain, "direct-dev", { service: `xmpps://127.0.0.1:${good.port}`, tls: { ca: ca.pem } });
      await agent.waitOnline(10_000);
      assert.match(agent.tlsProtocol ?? "none", /^TLSv1\.[23]$/);
      assert.ok(good.alpn.includes("xmpp-client"), `ALPN seen: ${JSON.stringify(good.alpn)}`);
    });

    it("refuses a certificate that does not name the XMPP domain, though a trusted CA signed it", async () => {
      const { agent, rec } = await agentFor(plain, "direct-wrong-name", {
        service: `xmpps://127.0.0.1:${wrongName.port}`,
        tls: { ca: ca.pem },
      });
      await expectRefused(agent, rec, /^TlsError: TLS with localhost failed, not connecting: .*\(ERR_TLS_CERT_ALTNAME_INVALID\)$/);
    });
  });

  it("runs as a process from AGENT_TLS and AGENT_TLS_CA_FILE, logging the TLS version and never the password", async () => {
    const username = "tls-proc";
    const password = "pw-tls-proc-secret";
    await stack.prosody.createUsers([{ username, password }]);
    const env: Env = {
      AGENT_SERVICE: stack.prosody.service,
      AGENT_DOMAIN: stack.prosody.vhost,
      AGENT_USERNAME: username,
      AGENT_PASSWORD: password,
      AGENT_LOCAL_URL: device.url,
      AGENT_GATEWAY_JID: "gateway.localhost",
      AGENT_SASL_MECHANISM: "PLAIN",
      AGENT_TLS: "required",
      AGENT_TLS_CA_FILE: ca.certFile,
      LOG_LEVEL: "info",
    };
    const child = teardown.stopLater(
      "agent process",
      await spawnChild(process.execPath, ["--import", "tsx", "adapters/device-agent/main.ts"], { name: "agent-tls", env }),
    );
    const res = await pollUntil(
      "device reachable through the agent process",
      async () => {
        const r = await fetch(`${gw.url}/devices/${username}/TEMPERATURE`);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nagent output:\n${child.output()}`);
    });
    assert.equal(((await res.json()) as { device: string }).device, "tls-device");
    const online = child
      .output()
      .split("\n")
      .find((l) => l.includes('"event":"online"'));
    assert.ok(online, child.output());
    assert.match((JSON.parse(online) as { tls: string }).tls, /^TLSv1\.[23]$/);
    assert.ok(!child.output().includes(password), "the password is never logged");
  });

  it("comes back over STARTTLS, verified again, after the server restarts", async () => {
    const fleet = teardown.stopLater(
      "fleet after restart",
      await startFleet(stack.prosody, ["tls-back"], echoDevice, { tls: { mode: "required", ca: ca.pem } }),
    );
    const agent = fleet.byId("tls-back").agent;
    await stack.prosody.restart();
    const res = await pollUntil(
      "served again after the restart",
      async () => {
        const r = await fetch(`${gw.url}/devices/tls-back/TEMPERATURE`);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    assert.equal(((await res.json()) as { device: string }).device, "tls-back");
    assert.match(agent.tlsProtocol ?? "none", /^TLSv1\.[23]$/);
    assert.match((await sessionSecurity(stack.prosody, agent.jid)) ?? "no session", /^TLSv1\.[23]$/);
  });

  describe("configuration", () => {
    const IDENTITY = { AGENT_USERNAME: "dev-17", AGENT_PASSWORD: "pw17" };

    it("requires TLS by default, except plain text for xmpp:// on loopback without a CA file", () => {
      for (const service of ["xmpp://127.0.0.1:5222", "xmpp://127.9.9.9", "xmpp://[::1]:5222", "xmpp://LocalHost:5222"]) {
        assert.equal(defaultTlsMode(service), "off", service);
        assert.equal(defaultTlsMode(service, true), "required", `${service} with a CA`);
      }
      for (const service of [
        "xmpp://xmpp.example.com:5222",
        "xmpp://10.0.0.1",
        "xmpp://[::2]",
        "xmpps://127.0.0.1:5223",
        "xmpp://localhost.example.com",
      ]) {
        assert.equal(defaultTlsMode(service), "required", service);
      }
      assert.equal(isLoopbackHost("[::ffff:127.0.0.1]"), true);
      // Nothing set: nothing added to the options (the connection applies the default).
      assert.equal("tls" in (loadAgentConfig(IDENTITY).agents[0] ?? {}), false);
    });

    it("reads AGENT_TLS and the certificates of AGENT_TLS_CA_FILE, shared by a fleet", async () => {
      const fleetFile = path.join(dir, "fleet.json");
      await writeFile(
        fleetFile,
        JSON.stringify([
          { username: "a", password: "x", localUrl: "http://127.0.0.1:1" },
          { username: "b", password: "y", localUrl: "http://127.0.0.1:2" },
        ]),
      );
      const config = loadAgentConfig({
        AGENT_FLEET_FILE: fleetFile,
        AGENT_SERVICE: "xmpp://xmpp.example.com",
        AGENT_TLS: "required",
        AGENT_TLS_CA_FILE: ca.certFile,
      });
      for (const a of config.agents) assert.deepEqual(a.tls, { mode: "required", ca: ca.pem });
      assert.deepEqual(loadAgentConfig({ ...IDENTITY, AGENT_TLS: "off" }).agents[0]?.tls, { mode: "off" });
    });

    it("refuses contradictory or unusable settings, one line per problem", async () => {
      const notPem = path.join(dir, "not-pem.txt");
      await writeFile(notPem, "hello\n");
      const cases: Array<[Env, RegExp]> = [
        [{ AGENT_TLS: "maybe" }, /^AGENT_TLS="maybe" must be one of required, off$/],
        [
          { AGENT_TLS: "off", AGENT_SERVICE: "xmpps://xmpp.example.com" },
          /^AGENT_TLS=off cannot apply to AGENT_SERVICE="xmpps:\/\/xmpp\.example\.com"/,
        ],
        [{ AGENT_TLS: "off", AGENT_TLS_CA_FILE: ca.certFile }, /^AGENT_TLS_CA_FILE is set but AGENT_TLS=off/],
        [{ AGENT_TLS_CA_FILE: path.join(dir, "missing.pem") }, /^AGENT_TLS_CA_FILE=".*missing\.pem" cannot be read: ENOENT/],
        [{ AGENT_TLS_CA_FILE: notPem }, /^AGENT_TLS_CA_FILE=".*not-pem\.txt" holds no PEM certificate/],
      ];
      for (const [env, problem] of cases) {
        const err = expectConfigError(() => loadAgentConfig({ ...IDENTITY, ...env }));
        assert.equal(err.problems.length, 1, err.message);
        assert.match(err.problems[0] ?? "", problem);
      }
    });
  });
});
