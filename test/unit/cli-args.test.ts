// gatewayctl's command line (docs/admin-api.md, "The command-line client"): each command read into its typed
// form, and every line that cannot be run refused as a usage error before any request is made.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { changesOf, parseDuration, parseInvocation, TOKEN_REFUSED, UsageError } from "../../cli/args.js";

const parse = (line: string) => parseInvocation(line.split(" ").filter((w) => w !== ""));

function refused(line: string | string[], pattern: RegExp): UsageError {
  let caught: unknown;
  try {
    parseInvocation(typeof line === "string" ? line.split(" ") : line);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof UsageError, `${String(line)} was not refused`);
  assert.match(caught.message, pattern);
  return caught;
}

describe("gatewayctl arguments", () => {
  it("reads list with its filter, page size, cursor, --all and --json", () => {
    assert.deepEqual(parse("devices list --transport http,shadow --prefix dev- --online false --limit 50 --cursor abc --all --json"), {
      json: true,
      command: { kind: "list", filter: { transport: "http,shadow", prefix: "dev-", online: false }, limit: 50, cursor: "abc", all: true },
    });
    assert.deepEqual(parse("devices list"), { json: false, command: { kind: "list", filter: {}, all: false } });
    assert.deepEqual(parse("--url http://gw:9000 devices list --online=true"), {
      json: false,
      url: "http://gw:9000",
      command: { kind: "list", filter: { online: true }, all: false },
    });
  });

  it("reads get, set (typed values, null removes) and status", () => {
    assert.deepEqual(parse("devices get dev-17 --json").command, { kind: "get", id: "dev-17" });
    assert.deepEqual(parse("devices set dev-17 timeoutMs=5000 fallback=http maxInFlight=null acceptAnnouncedAddress=true").command, {
      kind: "set",
      id: "dev-17",
      changes: { timeoutMs: 5000, fallback: "http", maxInFlight: null, acceptAnnouncedAddress: true },
    });
    assert.deepEqual(parse("devices status").command, { kind: "status" });
  });

  it("set keeps text the gateway is to judge as text, and a value may hold '='", () => {
    assert.deepEqual(changesOf(["timeoutMs=soon", "httpTarget=http://h:80/?a=b", "legacyAddress="]), {
      timeoutMs: "soon",
      httpTarget: "http://h:80/?a=b",
      legacyAddress: "",
    });
    const proto = changesOf(["__proto__=x"]);
    assert.equal(Object.getPrototypeOf(proto), Object.prototype, "a __proto__ field stays a field");
    assert.deepEqual(Object.keys(proto), ["__proto__"]);
  });

  it("reads cutover by ids (deduplicated) or by filter, --to defaulting to xmpp", () => {
    assert.deepEqual(parse("devices cutover dev-1 dev-2 dev-1 --dry-run").command, {
      kind: "cutover",
      ids: ["dev-1", "dev-2"],
      to: "xmpp",
      dryRun: true,
    });
    assert.deepEqual(parse("devices cutover --transport http --prefix dev- --to shadow --limit 200").command, {
      kind: "cutover",
      filter: { transport: "http", prefix: "dev-" },
      to: "shadow",
      dryRun: false,
      limit: 200,
    });
  });

  it("reads wave start (percent with filter, or ids), list, get --watch, rollback", () => {
    assert.deepEqual(
      parse("devices wave start --percent 12.5 --prefix dev- --window 10m --max-error-increase 0.05 --min-requests 20 --dry-run").command,
      {
        kind: "wave-start",
        request: {
          percent: 12.5,
          filter: { prefix: "dev-" },
          windowMs: 600_000,
          maxErrorRateIncrease: 0.05,
          minRequests: 20,
          dryRun: true,
        },
      },
    );
    assert.deepEqual(parse("devices wave start dev-1 dev-2 --window 90s").command, {
      kind: "wave-start",
      request: { ids: ["dev-1", "dev-2"], windowMs: 90_000 },
    });
    assert.deepEqual(parse("devices wave list").command, { kind: "wave-list" });
    assert.deepEqual(parse("devices wave get w1").command, { kind: "wave-get", id: "w1", watch: false, intervalMs: 1000 });
    assert.deepEqual(parse("devices wave get w1 --watch --interval 250ms").command, {
      kind: "wave-get",
      id: "w1",
      watch: true,
      intervalMs: 250,
    });
    assert.deepEqual(parse("devices wave rollback w1").command, { kind: "wave-rollback", id: "w1" });
  });

  it("help: --help, -h, `help`, or nothing at all", () => {
    for (const line of ["", "--help", "-h", "help", "devices list --help"]) assert.equal(parse(line).command.kind, "help", line);
  });

  it("refuses --token in every form, with the reason and without burying it under the usage", () => {
    for (const line of [
      ["devices", "list", "--token", "s3cret"],
      ["--token=s3cret", "devices", "status"],
      ["devices", "get", "x", "--token"],
    ]) {
      const err = refused(line, /--token is refused: a command line is visible to every user/);
      assert.equal(err.message, TOKEN_REFUSED);
      assert.equal(err.showUsage, false);
    }
    // After `--` it is an argument, not an option: here a device id (which the gateway refuses as one).
    assert.deepEqual(parseInvocation(["devices", "get", "--", "--token"]).command, { kind: "get", id: "--token" });
  });

  it("refuses unknown commands and options, and options of another command", () => {
    refused("status", /unknown command "status"/);
    refused("devices", /a command is missing/);
    refused("devices frobnicate", /unknown command "devices frobnicate"/);
    refused("devices wave", /a command is missing/);
    refused("devices wave stop w1", /unknown command "devices wave stop"/);
    refused("devices list --colour", /Unknown option '--colour'/);
    refused("devices get dev-1 --all", /--all does not apply/);
    refused("devices status --watch", /--watch does not apply/);
    refused("devices wave get w1 --percent 5", /--percent does not apply/);
  });

  it("refuses missing or extra arguments and bad values", () => {
    refused("devices get", /an id is missing/);
    refused("devices get a b", /one id only/);
    refused("devices list extra", /unexpected argument "extra"/);
    refused("devices set dev-1", /no field=value/);
    refused("devices set dev-1 timeoutMs", /is not field=value/);
    refused("devices set dev-1 =5", /is not field=value/);
    refused("devices set dev-1 a=1 a=2", /given twice/);
    refused("devices list --online yes", /--online must be true or false/);
    refused("devices list --limit 0", /--limit must be a whole number above 0/);
    refused("devices list --limit 1e3", /--limit must be a whole number/);
    refused("devices list --limit", /argument missing/);
    refused("devices wave start --percent ten", /--percent must be a number/);
    refused("devices wave start --percent 5 --window 600", /--window must be a duration with its unit/);
    refused("devices wave get w1 --interval 1s", /--interval goes with --watch/);
    refused("devices wave get w1 --watch --interval 10ms", /at least 100ms/);
  });

  it("never widens a cutover or a wave: ids or a filter, exactly one", () => {
    refused("devices cutover", /give device ids, or a filter/);
    refused("devices cutover --to http", /give device ids, or a filter/);
    refused("devices cutover dev-1 --prefix dev-", /not both/);
    refused("devices cutover dev-1 --limit 5", /--limit applies to a filter/);
    refused("devices cutover dev-1 --to ftp", /--to must be one of xmpp, http, shadow/);
    refused("devices wave start", /give --percent/);
    refused("devices wave start dev-1 --percent 5", /not both/);
    refused("devices wave start dev-1 --prefix dev-", /choose among candidates for --percent/);
  });

  it("reads durations with their unit only", () => {
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("30s"), 30_000);
    assert.equal(parseDuration("10m"), 600_000);
    assert.equal(parseDuration("1.5h"), 5_400_000);
    for (const bad of ["600", "10 m", "-1s", "1d", "s", ""]) assert.equal(parseDuration(bad), undefined, bad);
  });
});
