// The gateway on a Redis that demands TLS and an ACL user (REDIS_URL rediss://, REDIS_USERNAME,
// REDIS_PASSWORD_FILE, REDIS_TLS_CA_FILE), with its other secrets from files too (XMPP_COMPONENT_SECRET_FILE,
// GATEWAY_ADMIN_TOKEN_FILE): it serves, it refuses a Redis whose certificate it cannot verify or that refuses
// its password, and none of the secrets ever appears in its output.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { freePort, onFreePorts, pollUntil, PortTaken } from "../../local-stack/ports.js";
import { spawnChild, type ChildHandle } from "../../local-stack/process.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { issueServerCertificate, makeCertificateAuthority, type CertificateAuthority } from "../helpers/certificates.js";
import { startFleet } from "../helpers/fleet.js";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const REDIS_PASSWORD = "redis-acl-secret-4f2d9a";
const ADMIN_TOKEN = "admin-token-from-a-file-7c1e";
const COMPONENT_SECRET = "component-secret-from-a-file-b83";

describe("Redis over TLS with an ACL user, secrets from files", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let dir: string;
  let ca: CertificateAuthority;
  let otherCa: CertificateAuthority;
  let redisPort: number;
  let files: { password: string; token: string; secret: string; wrongPassword: string };
  const started: GatewayProcess[] = [];

  /** The gateway's environment for the secure Redis; `change` swaps parts of it. */
  const env = (change: Record<string, string> = {}) => ({
    REDIS_URL: `rediss://127.0.0.1:${redisPort}`,
    REDIS_USERNAME: "gateway",
    REDIS_PASSWORD_FILE: files.password,
    REDIS_TLS_CA_FILE: ca.certFile,
    XMPP_COMPONENT_SECRET: "",
    XMPP_COMPONENT_SECRET_FILE: files.secret,
    GATEWAY_ADMIN_TOKEN_FILE: files.token,
    LOG_LEVEL: "debug",
    ...change,
  });

  function assertNoSecret(output: string): void {
    for (const secret of [REDIS_PASSWORD, ADMIN_TOKEN, COMPONENT_SECRET, "wrong-password-0"]) {
      assert.ok(!output.includes(secret), `a secret appears in the gateway's output: ${secret}`);
    }
  }

  before(async () => {
    dir = await makeTempDir("redis-tls-");
    teardown.stopLater("temp dir", { stop: () => removeDir(dir) });
    ca = await makeCertificateAuthority(dir, "ca");
    otherCa = await makeCertificateAuthority(dir, "other", "ca test CA");
    const cert = await issueServerCertificate(ca, dir, "redis", { dns: ["localhost"], ip: ["127.0.0.1"] });
    files = {
      password: path.join(dir, "redis-password"),
      token: path.join(dir, "admin-token"),
      secret: path.join(dir, "component-secret"),
      wrongPassword: path.join(dir, "wrong-password"),
    };
    await writeFile(files.password, `${REDIS_PASSWORD}\n`); // a trailing newline, as `echo` writes it
    await writeFile(files.token, ADMIN_TOKEN);
    await writeFile(files.secret, `${COMPONENT_SECRET}\n`);
    await writeFile(files.wrongPassword, "wrong-password-0\n");

    // redis-server cannot report a TLS port it picked (--tls-port 0 turns TLS off): a probed one, probed again if taken.
    const redis = await onFreePorts(async () => {
      redisPort = await freePort();
      const child: ChildHandle = await spawnChild(
        "redis-server",
        [
          "--port",
          "0",
          "--tls-port",
          String(redisPort),
          "--bind",
          "127.0.0.1",
          "--tls-cert-file",
          cert.certFile,
          "--tls-key-file",
          cert.keyFile,
          "--tls-ca-cert-file",
          ca.certFile,
          "--tls-auth-clients",
          "no",
          // No default user: every connection must log in as `gateway`.
          "--user",
          "default",
          "off",
          "--user",
          "gateway",
          "on",
          `>${REDIS_PASSWORD}`,
          "~*",
          "&*",
          "+@all",
          "--save",
          "",
          "--appendonly",
          "no",
          "--dir",
          dir,
        ],
        { name: `redis-tls:${redisPort}`, cwd: dir },
      );
      const early = new AbortController();
      void child.exited.then(() => early.abort());
      try {
        await pollUntil(
          "Redis to accept TLS",
          () =>
            new Promise<boolean>((resolve) => {
              const s = tls.connect({ port: redisPort, host: "127.0.0.1", ca: ca.pem }, () => {
                s.destroy();
                resolve(true);
              });
              s.on("error", () => resolve(false));
            }),
          { timeoutMs: 10_000, signal: early.signal },
        );
      } catch (err) {
        await child.stop();
        if (/Address already in use/i.test(child.output())) throw new PortTaken(child.output());
        throw err;
      }
      return child;
    });
    teardown.stopLater("redis over TLS", redis);

    stack = teardown.stopLater(
      "stack",
      await startStack({ prosody: { components: [{ domain: "gateway.localhost", secret: COMPONENT_SECRET }] } }),
    );
    teardown.stopLater("fleet", await startFleet(stack.prosody, ["secure-dev"], () => (_req, res) => res.end("over tls")));
  });
  after(async () => {
    for (const g of started) assertNoSecret(g.child.output());
    await teardown.run();
  });

  it("serves with TLS, the ACL user and every secret read from a file", async () => {
    const gw = teardown.stopLater("gateway", await startGatewayProcess(stack, env()));
    started.push(gw);
    const r = await fetch(`${gw.url}/devices/secure-dev/x`);
    assert.deepEqual([r.status, await r.text()], [200, "over tls"]);
    const admin = await fetch(`${gw.url}/admin/devices`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    assert.equal(admin.status, 200, "the admin token came from its file");
    assert.equal(await gw.metric("gateway_redis_connected"), 1);
    await gw.stop();
  });

  for (const [what, change] of [
    ["a Redis certificate from a CA it does not trust", { REDIS_TLS_CA_FILE: "" as string }],
    ["a Redis certificate from another CA of the same name", { REDIS_TLS_CA_FILE: "other" }],
    ["a wrong password", { REDIS_PASSWORD_FILE: "wrong" }],
  ] as const) {
    it(`stays unready, without Redis, for ${what}`, async () => {
      const swapped: Record<string, string> = { ...change };
      if (swapped.REDIS_TLS_CA_FILE === "other") swapped.REDIS_TLS_CA_FILE = otherCa.certFile;
      if (swapped.REDIS_PASSWORD_FILE === "wrong") swapped.REDIS_PASSWORD_FILE = files.wrongPassword;
      // Ready never comes, so the process is started without waiting for it.
      const gw = await startUnready(swapped);
      await pollUntil("a failed Redis attempt in the log", () => /redis (error|not reachable)/.test(gw.output()), { timeoutMs: 10_000 });
      const ready = await fetch(`http://127.0.0.1:${gw.port}/readyz`);
      assert.equal(ready.status, 503);
      const device = await fetch(`http://127.0.0.1:${gw.port}/devices/secure-dev/x`);
      assert.equal(device.status, 503);
      assert.equal(((await device.json()) as { error: { code: string } }).error.code, "GW_STORE_UNAVAILABLE");
      assertNoSecret(gw.output());
      await gw.stop();
    });
  }

  it("refuses to start when a secret is given twice or its file is missing, naming only the variable", async () => {
    for (const [change, expected] of [
      [{ XMPP_COMPONENT_SECRET: COMPONENT_SECRET }, /XMPP_COMPONENT_SECRET and XMPP_COMPONENT_SECRET_FILE are both set/],
      [{ GATEWAY_ADMIN_TOKEN_FILE: path.join(dir, "nope") }, /GATEWAY_ADMIN_TOKEN_FILE=".*nope" cannot be read \(ENOENT\)/],
      [{ REDIS_URL: `redis://127.0.0.1:${redisPort}` }, /REDIS_TLS_CA_FILE is set but REDIS_URL is not rediss:\/\//],
    ] as const) {
      const child = await spawnChild(process.execPath, ["--import", "tsx", "gateway/main.ts"], {
        name: "gateway-bad-config",
        env: { ...baseEnv(0), ...env(change) }, // it never listens
      });
      const exit = await child.exited;
      assert.equal(exit.code, 2, child.output());
      assert.match(child.output(), expected);
      assertNoSecret(child.output());
    }
  });

  function baseEnv(port: number): Record<string, string> {
    const component = stack.prosody.components[0];
    return {
      GATEWAY_HOST: "127.0.0.1",
      GATEWAY_PORT: String(port),
      REDIS_KEY_PREFIX: "sec:",
      XMPP_COMPONENT_SERVICE: stack.prosody.componentService,
      XMPP_COMPONENT_DOMAIN: component?.domain ?? "gateway.localhost",
      DEVICE_JID_TEMPLATE: `{id}@${stack.prosody.vhost}/agent`,
      GATEWAY_DRAIN_GRACE_MS: "0",
      GATEWAY_DRAIN_TIMEOUT_MS: "1000",
    };
  }

  async function startUnready(change: Record<string, string>): Promise<{ port: number; output(): string; stop(): Promise<void> }> {
    const gw = teardown.stopLater(
      "unready gateway",
      await startGatewayProcess(stack, { ...baseEnv(0), ...env(change) }, { waitFor: "listening", name: "gateway-unready" }),
    );
    return { port: gw.port, output: () => gw.child.output(), stop: () => gw.stop() };
  }
});
