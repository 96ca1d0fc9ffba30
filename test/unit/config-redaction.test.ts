/**
 * No secret in a configuration error: a URL setting that does not parse (a space in the password, a bad
 * port) is echoed in its problem line with the userinfo's password replaced by `***`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { redactUrl } from "../../lib/env.js";
import { loadAgentConfig } from "../../adapters/device-agent/config.js";
import { loadConfig } from "../../gateway/config.js";
import { expectConfigError } from "../helpers/thrown.js";

const SECRET = { XMPP_COMPONENT_SECRET: "s3cret" };

describe("redactUrl", () => {
  it("replaces the password of a URL's userinfo, parsable or not", () => {
    assert.equal(redactUrl("redis://user:hunter2@cache:6379/0"), "redis://user:***@cache:6379/0");
    assert.equal(redactUrl("redis://user:pa ss@host:port"), "redis://user:***@host:port");
    assert.equal(redactUrl("redis://:hunter2@cache:99999"), "redis://:***@cache:99999");
    // A password holding "@", "/" or "#": malformed, and still nothing of it is left.
    assert.equal(redactUrl("redis://u:p@ss/w#rd@cache:6379"), "redis://u:***@cache:6379");
    assert.equal(redactUrl("rediss://u:se@cret@cache:6380"), "rediss://u:***@cache:6380");
    assert.equal(redactUrl("https://TOKEN@example.com/x"), "https://***@example.com/x");
  });

  it("leaves URLs without userinfo alone", () => {
    for (const url of ["redis://cache:6379", "xmpp://127.0.0.1:5347", "not a url", "http://h/p?a=b"]) assert.equal(redactUrl(url), url);
    // An "@" after the authority: more is hidden than the userinfo, never less.
    assert.equal(redactUrl("http://u:pw@h/p?a=b@c"), "http://u:***@c");
  });
});

describe("configuration errors never quote a password", () => {
  for (const [name, value] of [
    ["REDIS_URL", "redis://gw:hunter2 secret@cache:port"],
    ["REDIS_URL", "redis://gw:hunter2secret@cache:notaport"],
    ["REDIS_URL", "redis://:hunter2secret@cache:99999"],
    ["REDIS_URL", "http://gw:hunter2secret@cache:6379"],
    ["XMPP_COMPONENT_SERVICE", "xmpp://c:hunter2secret@host:bad"],
  ] as const) {
    it(`${name}=${value.replace(/hunter2[^@]*/, "…")}`, () => {
      const err = expectConfigError(() => loadConfig({ ...SECRET, [name]: value }));
      const line = err.problems.find((p) => p.startsWith(`${name}=`));
      assert.ok(line, `a problem line names ${name}: ${err.problems.join(" | ")}`);
      assert.ok(!err.message.includes("hunter2"), err.message);
      assert.match(line, /:\*\*\*@/);
    });
  }

  it("the device agent's URLs too (AGENT_LOCAL_URL, a fleet file's localUrl)", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "redact-"));
    try {
      const base = { AGENT_USERNAME: "dev-1", AGENT_PASSWORD: "pw" };
      const direct = expectConfigError(() => loadAgentConfig({ ...base, AGENT_LOCAL_URL: "http://admin:hunter2 x@127.0.0.1:port" }));
      assert.ok(!direct.message.includes("hunter2"), direct.message);
      assert.match(direct.message, /AGENT_LOCAL_URL=.*admin:\*\*\*@/);
      const fleet = path.join(dir, "fleet.json");
      writeFileSync(fleet, JSON.stringify([{ username: "dev-1", password: "pw", localUrl: "ftp://admin:hunter2@127.0.0.1" }]));
      const fromFile = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: fleet }));
      assert.ok(!fromFile.message.includes("hunter2"), fromFile.message);
      assert.match(fromFile.message, /admin:\*\*\*@/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
