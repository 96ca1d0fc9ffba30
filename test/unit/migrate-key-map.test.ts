// migrate-keys' name mapping: each persistent key of the release before hash tags to the name this release
// gives it (built by RedisKeys itself), and every key of the new layout left alone, hostile JIDs included.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { normalizeJid } from "../../lib/xmpp/jid.js";
import { RedisKeys } from "../../gateway/redis/keys.js";
import { escapeGlob, familyScans, isTagged, mapOldKey } from "../../gateway/migrate/key-map.js";
import { parseMigrateArgs } from "../../gateway/migrate/cli-options.js";

const to = new RedisKeys("gw:");
const map = (key: string, fromPrefix = "gw:") => mapOldKey(key, fromPrefix, to);
const moved = (key: string, fromPrefix = "gw:") => {
  const m = map(key, fromPrefix);
  assert.ok(m !== undefined && "newKey" in m, `${key} is moved: ${JSON.stringify(m)}`);
  return m.newKey;
};
const skipped = (key: string) => {
  const m = map(key);
  assert.ok(m !== undefined && "skip" in m, `${key} is skipped: ${JSON.stringify(m)}`);
  return m.skip;
};

describe("migrate-keys: old key name → new key name", () => {
  it("moves each persistent family to the name RedisKeys builds", () => {
    const jid = "dev-17@devices.example.com/agent";
    assert.deepEqual(
      [
        "gw:device:dev-17",
        "gw:devices",
        "gw:legacy:10.0.0.7:80",
        "gw:legacy:[::1]:8080",
        "gw:idem:dev-17:AbC_-9",
        `gw:queue:${jid}`,
        `gw:queuebytes:${jid}`,
        "gw:queued",
        "gw:queuedbytes",
        "gw:request:r-1",
        "gw:shadow:mismatches",
      ].map((k) => moved(k)),
      [
        "gw:device:{dev-17}",
        "gw:devices",
        "gw:legacy:{10.0.0.7:80}",
        "gw:legacy:{[::1]:8080}",
        "gw:idem:{dev-17}:AbC_-9",
        `gw:queue:{${jid}}`,
        `gw:queuebytes:{${jid}}`,
        "gw:queued:{total}",
        "gw:queuedbytes:{total}",
        "gw:request:r-1",
        "gw:shadow:mismatches",
      ],
    );
  });

  it("keeps an entry stored before ids were canonical under its spelling (the gateway renames it at start)", () => {
    assert.equal(moved("gw:device:Dev-9"), "gw:device:{Dev-9}");
  });

  it("changes the prefix when the old one differs", () => {
    assert.equal(moved("old:device:dev-1", "old:"), "gw:device:{dev-1}");
    assert.equal(moved("old:devices", "old:"), "gw:devices");
    assert.equal(moved("device:dev-1", ""), "gw:device:{dev-1}");
    assert.equal(map("gw:device:dev-1", "old:"), undefined, "another prefix's key is not looked at");
  });

  it("skips every key of the new layout", () => {
    for (const key of [
      to.device("dev-17"),
      to.legacyIndex("10.0.0.7:80"),
      to.idempotency("dev-17", "h"),
      to.offlineQueue("dev-17@d.example/agent"),
      to.offlineQueueBytes("dev-17@d.example/agent"),
    ]) {
      assert.equal(skipped(key), "new layout", key);
    }
  });

  it("ignores the short-lived keys, which are not moved", () => {
    for (const key of [
      "gw:corr:abc",
      "gw:exchanges:dev-1@d/a",
      "gw:stream:dev-1@d/a|s1",
      "gw:parked:dev-1@d/a|s1",
      "gw:parkedbytes:dev-1@d/a",
      "gw:inflight:dev-1",
      "gw:rate:10.0.0.1",
      "gw:draining:dev-1@d/a",
      "gw:online",
      "gw:seen:dev-1@d/a",
      "gw:offline:dev-1@d/a",
      "gw:queued:{total}",
      "gw:queuedbytes:{total}",
    ]) {
      assert.equal(map(key), undefined, key);
    }
  });

  it("skips what no release wrote", () => {
    assert.equal(skipped("gw:idem:dev-17"), "not <device id>:<hash>");
    assert.equal(skipped("gw:idem:dev-17:"), "not <device id>:<hash>");
    assert.equal(skipped("gw:device:"), "no value after the family name");
  });

  it("moves JIDs with braces, backslashes and colons, as tag() puts them", () => {
    const cases: Array<[string, string]> = [
      ["de{v}1@d.example/agent", "{de{v}1@d.example/agent}"],
      ["{dev@d.example/agent", "{{dev@d.example/agent}"],
      ["dev}@d.example/agent}", "{dev}@d.example/agent}}"],
      ["}dev@d.example/agent", "{\\}dev@d.example/agent}"],
      ["\\dev@d.example/agent", "{\\\\dev@d.example/agent}"],
      ["dev@d.example/a:b{c}", "{dev@d.example/a:b{c}}"],
      ["{}@d.example/x", "{{}@d.example/x}"],
    ];
    for (const [jid, tagged] of cases) {
      assert.equal(moved(`gw:queue:${jid}`), `gw:queue:${tagged}`, jid);
      assert.equal(moved(`gw:queuebytes:${jid}`), `gw:queuebytes:${tagged}`, jid);
    }
  });

  it("takes a JID that is itself in tag form for the new layout: its old name is the new name of another JID", () => {
    const hostile = "{x@d.example/y}";
    assert.equal(`gw:queue:${hostile}`, to.offlineQueue("x@d.example/y"), "the two names are one");
    assert.equal(skipped(`gw:queue:${hostile}`), "new layout");
  });

  it("every old per-JID key not in tag form moves to the new key of its JID, and every new key is skipped (generated JIDs)", () => {
    const jidChars = fc.constantFrom(..."ab{}\\/@:.|-_ ".split(""));
    const jids = fc.array(jidChars, { minLength: 1, maxLength: 12 }).map((cs) => normalizeJid(cs.join("")));
    fc.assert(
      fc.property(jids, (jid) => {
        const newQueue = to.offlineQueue(jid);
        assert.deepEqual(map(newQueue), { family: "queue", skip: "new layout" });
        if (!isTagged(jid)) assert.equal(moved(`gw:queue:${jid}`), newQueue);
      }),
      { numRuns: 2000 },
    );
  });

  it("tells tag() forms from other braced values", () => {
    assert.equal(isTagged("{a}"), true);
    assert.equal(isTagged("{\\}"), true, "tag of the empty value");
    assert.equal(isTagged("{\\}a}"), true, "tag of `}a`");
    assert.equal(isTagged("{\\\\a}"), true, "tag of `\\a`");
    assert.equal(isTagged("{}"), false);
    assert.equal(isTagged("{\\a}"), false, "tag() never writes `\\` before a plain value");
    assert.equal(isTagged("{}a}"), false);
    assert.equal(isTagged("{a"), false);
    assert.equal(isTagged("a}"), false);
  });
});

describe("migrate-keys: scan patterns", () => {
  it("escapes the old prefix, and keeps new device, legacy and idem keys out of the match", () => {
    const patterns = Object.fromEntries(familyScans("a*[b]?\\:").map((s) => [s.family, s.pattern]));
    assert.equal(escapeGlob("a*[b]?\\:"), "a\\*\\[b\\]\\?\\\\:");
    assert.equal(patterns.device, "a\\*\\[b\\]\\?\\\\:device:[^{]*");
    assert.equal(patterns.idem, "a\\*\\[b\\]\\?\\\\:idem:[^{]*");
    assert.equal(patterns.queue, "a\\*\\[b\\]\\?\\\\:queue:*");
    assert.equal(patterns.queued, "a*[b]?\\:queued", "an exact key is a name, not a pattern");
  });
});

describe("migrate-keys: command line", () => {
  it("reads the options", () => {
    assert.deepEqual(parseMigrateArgs([]), { deleteOld: false, dryRun: false, scanCount: 1000 });
    assert.deepEqual(
      parseMigrateArgs(["--from", "redis://10.0.0.1:6379", "--from-prefix=", "--delete-old", "--dry-run", "--count", "50"]),
      { from: "redis://10.0.0.1:6379", fromPrefix: "", deleteOld: true, dryRun: true, scanCount: 50 },
    );
    assert.equal(parseMigrateArgs(["--help"]), "help");
  });

  it("refuses what it does not know, and never echoes a password", () => {
    for (const args of [["--form", "x"], ["extra"], ["--count", "0"], ["--count", "1.5"], ["--from", "http://x"]]) {
      const r = parseMigrateArgs(args);
      assert.ok(typeof r === "object" && "problem" in r, args.join(" "));
    }
    const r = parseMigrateArgs(["--from", "http://user:s3cret@x"]);
    assert.ok(typeof r === "object" && "problem" in r && !r.problem.includes("s3cret"), JSON.stringify(r));
  });
});
