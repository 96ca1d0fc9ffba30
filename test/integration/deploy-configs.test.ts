// The configurations shipped in deploy/ are the ones the tests run; here each is also checked by its own
// server's checker, so a change that a server would refuse fails CI even before a test starts it.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { after, it } from "node:test";
import { checkHaproxyConfig, HAPROXY_TEMPLATE, renderHaproxyConfig } from "../../local-stack/haproxy.js";
import { startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";

let prosody: ProsodyServer | undefined;
const dirs: string[] = [];
after(async () => {
  await prosody?.stop();
  for (const d of dirs) await removeDir(d);
});

it("deploy/prosody/prosody.cfg.lua, as rendered for a run, passes prosodyctl check config", async () => {
  prosody = await startProsody({ components: [{ domain: "gateway.localhost", secret: "s", conflictResolve: "kick_old" }] });
  const check = spawnSync("prosodyctl", ["--config", prosody.configPath, "check", "config"], { encoding: "utf8", timeout: 20_000 });
  assert.equal(check.status, 0, `${check.stdout}\n${check.stderr}`);
  assert.match(check.stdout, /All checks passed/);
});

it("deploy/haproxy/haproxy.cfg, as rendered for two instances, passes haproxy -c (warnings count as errors)", async () => {
  const dir = await makeTempDir("haproxy-check-");
  dirs.push(dir);
  const file = path.join(dir, "haproxy.cfg");
  const text = renderHaproxyConfig(await readFile(HAPROXY_TEMPLATE, "utf8"), {
    frontendPort: 18080,
    statsSocket: path.join(dir, "haproxy.sock"),
    servers: [
      { name: "gw-a", port: 18081 },
      { name: "gw-b", port: 18082 },
    ],
  });
  await writeFile(file, text);
  await checkHaproxyConfig(file);
  assert.match(text, /option httpchk GET \/readyz/);
});
