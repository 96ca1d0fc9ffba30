// gatewayctl (docs/admin-api.md, "The command-line client") end to end: a real gateway with an admin token
// on real Redis and Prosody, a registry of a few hundred devices, and the client run as cli/main.ts runs it
// (in this process), or as its own process through the package's bin and `npx gatewayctl` where the process
// is the point. What the client did is checked through the API.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { run } from "../../cli/run.js";
import { parseDevicesFile } from "../../gateway/registry/import.js";
import { freePort, pollUntil } from "../../local-stack/ports.js";
import { echoDevice } from "../helpers/echo-device.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = join(ROOT, "cli", "gatewayctl.js");
const TOKEN = `admin-${randomBytes(16).toString("hex")}`;

const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, "0")}`);
/** Listed page by page (230 > 2 pages of the default 100). */
const HTTP_IDS = range("cli-h-", 230);
const XMPP_IDS = range("cli-x-", 5);
/** Moved by a filtered cutover, 3 pages of --limit 25. */
const CUT_IDS = range("cli-c-", 60);
const ONLINE_ID = "cli-on-1";
/** Candidates of migration waves. */
const WAVE_IDS = range("cli-w-", 10);
const ALL_IDS = [...HTTP_IDS, ...XMPP_IDS, ...CUT_IDS, ONLINE_ID, ...WAVE_IDS].sort();

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Entry {
  id: string;
  transport: string;
  [field: string]: unknown;
}

describe("gatewayctl against a running gateway", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let dir: string;

  /**
   * The client in this process: run(), what cli/main.ts hands the real streams and environment to, with
   * streams that collect what it writes and only the environment given. Most cases run this way (a process
   * of its own costs a second of TypeScript loading each); the cases about the process itself (`npx`, the
   * exit status, the refusals before any request) start one.
   */
  function startGatewayctl(
    args: string[],
    env: Record<string, string> = { GATEWAY_ADMIN_TOKEN: TOKEN },
  ): { stdout(): string; done: Promise<Ran> } {
    const out: string[] = [];
    const err: string[] = [];
    const done = run(args, {
      stdout: { write: (text: string) => out.push(text) },
      stderr: { write: (text: string) => err.push(text) },
      env: { GATEWAY_URL: gw.url, ...env },
    }).then((code) => ({ code, stdout: out.join(""), stderr: err.join("") }));
    return { stdout: () => out.join(""), done };
  }

  /** The client as its own process, with nothing of this process's environment but PATH and what is given. */
  function gatewayctlProcess(args: string[], env: Record<string, string>, command = [process.execPath, BIN]): Promise<Ran> {
    const [file = "", ...before] = command;
    const child = spawn(file, [...before, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? dir, GATEWAY_URL: gw.url, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.stderr.on("data", (c: Buffer) => err.push(c));
    return new Promise<Ran>((resolve, reject) => {
      // A bound on a client that hangs, so the test fails with what it printed rather than timing out mute.
      const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      child.on("error", reject);
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
      });
    });
  }

  const gatewayctl = (args: string[], env?: Record<string, string>): Promise<Ran> => startGatewayctl(args, env).done;

  const ok = async (args: string[], env?: Record<string, string>): Promise<Ran> => {
    const ran = await gatewayctl(args, env);
    assert.equal(ran.code, 0, `gatewayctl ${args.join(" ")}: exit ${ran.code}\n${ran.stderr}`);
    return ran;
  };

  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200, `${path}: ${res.status}`);
    return (await res.json()) as T;
  };

  const waveTransports = async () => Promise.all(WAVE_IDS.map(async (id) => (await api<Entry>(`/admin/devices/${id}`)).transport));

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    dir = await mkdtemp(join(tmpdir(), "gw-cli-"));
    teardown.add("temp dir", () => rm(dir, { recursive: true, force: true }));
    const entries = [
      ...HTTP_IDS.map((id, i) => ({ id, transport: "http", httpTarget: `http://127.0.0.1:9/${i}` })),
      ...XMPP_IDS.map((id) => ({ id, transport: "xmpp" })),
      ...CUT_IDS.map((id) => ({ id, transport: "http", httpTarget: "http://127.0.0.1:9" })),
      { id: ONLINE_ID, transport: "xmpp" },
      ...WAVE_IDS.map((id) => ({ id, transport: "http", httpTarget: "http://127.0.0.1:9" })),
    ];
    await writeFile(join(dir, "devices.json"), JSON.stringify(entries));
    gw = teardown.stopLater(
      "gateway",
      await startGateway(stack, {
        GATEWAY_ADMIN_TOKEN: TOKEN,
        GATEWAY_DEVICES_FILE: join(dir, "devices.json"),
        // Waves are judged (and their end seen) this often: a wave watched for 3 s ends soon after it.
        GATEWAY_WAVE_CHECK_MS: "50",
      }),
    );
    teardown.stopLater("fleet", await startFleet(stack.prosody, [ONLINE_ID], (id) => echoDevice(id)));
    await pollUntil(`${ONLINE_ID} online`, async () => (await api<Entry>(`/admin/devices/${ONLINE_ID}`)).online === true, {
      timeoutMs: 15_000,
    });
  });
  after(() => teardown.run());

  it("list: one page as a table, with how to get the next", async () => {
    const { stdout, stderr } = await ok(["devices", "list"]);
    const lines = stdout.trimEnd().split("\n");
    assert.match(lines[0] ?? "", /^ID +TRANSPORT +FALLBACK +HTTP TARGET +LEGACY ADDRESS +UPDATED$/);
    const rows = lines.slice(1, -1);
    assert.equal(rows.length, 100, "the API's default page");
    assert.deepEqual(
      rows.map((r) => r.split(/ +/)[0]),
      ALL_IDS.slice(0, 100),
    );
    assert.match(rows[0] ?? "", /^cli-c-000 +http +- +http:\/\/127\.0\.0\.1:9 +- +\d{4}-/);
    assert.match(lines.at(-1) ?? "", /^more: --cursor \S+ \(up to \d+ entries after this page\)$/);
    assert.equal(stderr, "");
  });

  it("list --json: the API's page; --cursor continues it", async () => {
    const first = JSON.parse((await ok(["devices", "list", "--limit", "7", "--json"])).stdout) as { devices: Entry[]; nextCursor: string };
    assert.deepEqual(
      first.devices.map((d) => d.id),
      ALL_IDS.slice(0, 7),
    );
    assert.equal(typeof first.nextCursor, "string");
    const second = JSON.parse((await ok(["devices", "list", "--limit", "7", "--cursor", first.nextCursor, "--json"])).stdout) as {
      devices: Entry[];
    };
    assert.deepEqual(
      second.devices.map((d) => d.id),
      ALL_IDS.slice(7, 14),
    );
  });

  it("list --all --json: every entry through many pages, as one array that is a valid devices file", async () => {
    const { stdout, stderr } = await ok(["devices", "list", "--all", "--json", "--limit", "50"]);
    const entries = parseDevicesFile(stdout, "devices.json");
    assert.deepEqual(
      entries.map((e) => e.id),
      ALL_IDS,
    );
    assert.equal(entries.find((e) => e.id === "cli-h-007")?.httpTarget, "http://127.0.0.1:9/7");
    // Progress went to stderr, one plain line per page but the last (stderr is no terminal here).
    const progress = stderr.trimEnd().split("\n");
    assert.equal(progress.length, Math.ceil(ALL_IDS.length / 50) - 1, stderr);
    assert.match(progress[0] ?? "", /^list: 50 entries, ~\d+ left to examine$/);
  });

  it("list --all as a table counts the entries; filters narrow the walk", async () => {
    const all = await ok(["devices", "list", "--all"]);
    assert.match(all.stdout, new RegExp(`\\n${ALL_IDS.length} entries\\n$`));
    const xmpp = JSON.parse(
      (await ok(["devices", "list", "--all", "--json", "--transport", "xmpp", "--prefix", "CLI-X"])).stdout,
    ) as Entry[];
    assert.deepEqual(
      xmpp.map((e) => e.id),
      XMPP_IDS,
    );
    const online = JSON.parse((await ok(["devices", "list", "--all", "--json", "--online", "true"])).stdout) as Entry[];
    assert.deepEqual(
      online.map((e) => e.id),
      [ONLINE_ID],
    );
    const offlineXmpp = JSON.parse(
      (await ok(["devices", "list", "--all", "--json", "--online", "false", "--transport", "xmpp"])).stdout,
    ) as Entry[];
    assert.deepEqual(
      offlineXmpp.map((e) => e.id),
      XMPP_IDS,
    );
  });

  it("list with a filter the gateway refuses: exit 1 with its code and the field", async () => {
    const ran = await gatewayctl(["devices", "list", "--transport", "carrier-pigeon"]);
    assert.equal(ran.code, 1);
    assert.match(ran.stderr, /^error: GW_INVALID_FIELD: .*\(field: transport\)\n$/);
    assert.equal(ran.stdout, "");
  });

  it("get: the entry as label/value lines, or the API's JSON", async () => {
    // A device never seen online: its presence is unknown (null), shown as such.
    const table = await ok(["devices", "get", "cli-h-003"]);
    assert.match(
      table.stdout,
      /^id +cli-h-003\ntransport +http\nhttpTarget +http:\/\/127\.0\.0\.1:9\/3\nonline +unknown\nupdatedAt +\d{4}-/,
    );
    const json = JSON.parse((await ok(["devices", "get", ONLINE_ID, "--json"])).stdout) as Entry;
    assert.deepEqual(json, await api<Entry>(`/admin/devices/${ONLINE_ID}`));
    assert.equal(json.online, true);
  });

  it("get of an unknown device: exit 1 with GW_UNKNOWN_DEVICE", async () => {
    const ran = await gatewayctl(["devices", "get", "never-was"]);
    assert.equal(ran.code, 1);
    assert.equal(ran.stderr, "error: GW_UNKNOWN_DEVICE: no device never-was in the registry\n");
  });

  it("set: merges typed fields, null removes one; a refused value names its field", async () => {
    const set = JSON.parse((await ok(["devices", "set", "cli-x-001", "timeoutMs=5000", "maxInFlight=3", "--json"])).stdout) as Entry;
    assert.equal(set.timeoutMs, 5000);
    assert.equal(set.maxInFlight, 3);
    await ok(["devices", "set", "cli-x-001", "maxInFlight=null"]);
    const stored = await api<Entry>("/admin/devices/cli-x-001");
    assert.equal(stored.timeoutMs, 5000);
    assert.equal("maxInFlight" in stored, false);

    const bad = await gatewayctl(["devices", "set", "cli-x-001", "timeoutMs=0"]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: GW_INVALID_FIELD: timeoutMs .*\(field: timeoutMs\)\n$/);
    assert.equal((await api<Entry>("/admin/devices/cli-x-001")).timeoutMs, 5000, "nothing written");
  });

  it("cutover by ids: --dry-run writes nothing; then for real; an unknown id fails alone (exit 1, listed)", async () => {
    const ids = ["cli-h-010", "cli-h-011", "cli-x-002", "cli-nope"];
    const dry = await gatewayctl(["devices", "cutover", ...ids, "--dry-run"]);
    assert.equal(dry.code, 1, dry.stderr);
    assert.match(dry.stdout, /^cutover to xmpp \(dry run: nothing was written\): 4 matched, 2 would change, 1 unchanged, 1 failed\n/);
    assert.match(dry.stdout, /\nFAILED +CODE +MESSAGE\ncli-nope +GW_UNKNOWN_DEVICE +\S/);
    assert.equal((await api<Entry>("/admin/devices/cli-h-010")).transport, "http");

    const real = await gatewayctl(["devices", "cutover", ...ids]);
    assert.equal(real.code, 1);
    assert.match(real.stdout, /^cutover to xmpp: 4 matched, 2 changed, 1 unchanged, 1 failed\n/);
    for (const id of ["cli-h-010", "cli-h-011"]) assert.equal((await api<Entry>(`/admin/devices/${id}`)).transport, "xmpp");

    const back = JSON.parse((await ok(["devices", "cutover", "cli-h-010", "cli-h-011", "--to", "http", "--json"])).stdout) as {
      changed: number;
      results: Array<{ id: string; outcome: string; transport?: { from: string; to: string } }>;
    };
    assert.equal(back.changed, 2);
    assert.deepEqual(back.results[0], { id: "cli-h-010", outcome: "changed", transport: { from: "xmpp", to: "http" } });
    assert.equal((await api<Entry>("/admin/devices/cli-h-011")).transport, "http");
  });

  it("cutover of more than 1000 ids: calls of 1000 at most, a progress line between them", async () => {
    const ids = [...HTTP_IDS.slice(0, 3), ...range("cli-ghost-", 1000)];
    const ran = await gatewayctl(["devices", "cutover", ...ids, "--dry-run", "--json"]);
    assert.equal(ran.code, 1, "the unknown ids failed");
    const answer = JSON.parse(ran.stdout) as { matched: number; changed: number; failed: number; results: unknown[] };
    assert.equal(answer.results.length, 1003);
    assert.equal(answer.changed, 3);
    assert.equal(answer.failed, 1000);
    assert.equal(ran.stderr, "cutover (dry run): 3 would change, 0 unchanged, 997 failed, ~3 left\n");
  });

  it("cutover by filter: page after page until nextCursor is null; --dry-run first, then for real", async () => {
    const filter = ["--transport", "http", "--prefix", "cli-c-", "--limit", "25"];
    const dry = JSON.parse((await ok(["devices", "cutover", ...filter, "--dry-run", "--json"])).stdout) as {
      dryRun: boolean;
      changed: number;
    };
    assert.equal(dry.dryRun, true);
    assert.equal(dry.changed, CUT_IDS.length);
    const still = JSON.parse(
      (await ok(["devices", "list", "--all", "--json", "--prefix", "cli-c-", "--transport", "http"])).stdout,
    ) as Entry[];
    assert.equal(still.length, CUT_IDS.length, "a dry run wrote nothing");

    const real = await ok(["devices", "cutover", ...filter]);
    assert.equal(real.stdout, `cutover to xmpp: ${CUT_IDS.length} matched, ${CUT_IDS.length} changed, 0 unchanged, 0 failed\n`);
    const lines = real.stderr.trimEnd().split("\n");
    assert.ok(lines.length >= 2, `a progress line per page but the last: ${real.stderr}`);
    assert.match(lines[0] ?? "", /^cutover: 25 changed, 0 unchanged, 0 failed, ~\d+ left$/);
    const moved = JSON.parse((await ok(["devices", "list", "--all", "--json", "--prefix", "cli-c-"])).stdout) as Entry[];
    assert.deepEqual(
      moved.map((e) => `${e.id}:${e.transport}`),
      CUT_IDS.map((id) => `${id}:xmpp`),
    );
  });

  it("status: the migration summary as a table, or the API's JSON", async () => {
    const json = JSON.parse((await ok(["devices", "status", "--json"])).stdout) as unknown;
    assert.deepEqual(json, await api("/admin/migration"));
    const { stdout } = await ok(["devices", "status"]);
    assert.match(stdout, new RegExp(`^registered +${ALL_IDS.length}\\nonline +1\\n`));
    assert.match(stdout, /\nTRANSPORT +DEVICES +SHARE\nxmpp +\d+ +\d+\.\d%\nhttp +\d+ +\d+\.\d%\nshadow +0 +0\.0%\n/);
    assert.match(stdout, /\nshadow mismatches: none/);
  });

  it("wave start --dry-run: the devices a wave would move, nothing changed", async () => {
    const plan = JSON.parse(
      (await ok(["devices", "wave", "start", "--percent", "50", "--prefix", "cli-w-", "--dry-run", "--json"])).stdout,
    ) as {
      dryRun: boolean;
      devices: number;
      deviceIds: string[];
    };
    assert.equal(plan.dryRun, true);
    assert.equal(plan.devices, 5, "50% of 10 candidates");
    assert.ok(plan.deviceIds.every((id) => WAVE_IDS.includes(id)));
    const table = await ok(["devices", "wave", "start", "--percent", "50", "--prefix", "cli-w-", "--dry-run"]);
    assert.match(table.stdout, /^dry run +nothing was changed: 5 devices would move to xmpp\n/);
    assert.match(table.stdout, /\nwindow +10m\n/);
    assert.deepEqual(
      await waveTransports(),
      WAVE_IDS.map(() => "http"),
    );
  });

  it("wave start, then get --watch until its window ends; a completed wave is rolled back by hand, once", async () => {
    const started = JSON.parse(
      (await ok(["devices", "wave", "start", "--percent", "30", "--prefix", "cli-w-", "--window", "3s", "--json"])).stdout,
    ) as {
      id: string;
      state: string;
      deviceIds: string[];
    };
    assert.equal(started.state, "watching");
    assert.equal(started.deviceIds.length, 3);
    for (const id of started.deviceIds) assert.equal((await api<Entry>(`/admin/devices/${id}`)).transport, "xmpp");

    // The watch ends with the window. Had the window passed before the client's first look (a slow start), it
    // shows the completed wave and ends at once: either way, its last word is "completed".
    const watched = await ok(["devices", "wave", "get", started.id, "--watch", "--interval", "100ms"]);
    assert.match(watched.stdout, new RegExp(`^wave +${started.id}\\nstate +(watching|completed)\\n`));
    const lines = watched.stdout.trimEnd().split("\n");
    if (/\nstate +watching\n/.test(watched.stdout)) {
      assert.match(lines.at(-1) ?? "", /^\d\d:\d\d:\d\d {2}completed {2}wave 0\/0 \(0\.00%\) {2}baseline \d+\/\d+ \(\d+\.\d\d%\)$/);
    } else {
      assert.match(lines.at(-1) ?? "", /^device ids +(cli-w-\d{3} ?){3}$/);
    }
    assert.equal((await api<{ state: string }>(`/admin/waves/${started.id}`)).state, "completed");

    const rolled = await ok(["devices", "wave", "rollback", started.id]);
    assert.match(rolled.stdout, /\nstate +rolled-back\n/);
    assert.match(rolled.stdout, /\nrollback +manual at \S+; rolled back by an operator; 3 restored\n/);
    for (const id of started.deviceIds) assert.equal((await api<Entry>(`/admin/devices/${id}`)).transport, "http");
    const again = await gatewayctl(["devices", "wave", "rollback", started.id]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, new RegExp(`^error: GW_CONFLICT: wave ${started.id} is rolled-back already\n$`));
  });

  it("wave get --watch ends when an operator rolls the wave back meanwhile", async () => {
    const started = JSON.parse((await ok(["devices", "wave", "start", ...WAVE_IDS.slice(0, 2), "--window", "10m", "--json"])).stdout) as {
      id: string;
    };
    const watcher = startGatewayctl(["devices", "wave", "get", started.id, "--watch", "--interval", "100ms"]);
    // The watcher has read the wave once it prints its first count line; then the rollback is a change it sees.
    await pollUntil("the watcher's first line", () => /\n\d\d:\d\d:\d\d {2}watching /.test(watcher.stdout()), { timeoutMs: 30_000 });
    await ok(["devices", "wave", "rollback", started.id]);
    const watched = await watcher.done;
    assert.equal(watched.code, 0, watched.stderr);
    const lines = watched.stdout.trimEnd().split("\n");
    assert.match(lines.at(-2) ?? "", / {2}rolled-back {2}wave /);
    assert.match(lines.at(-1) ?? "", /^manual at \S+; rolled back by an operator; 2 restored$/);
  });

  it("wave list, wave get of an unknown wave, and the waves in status", async () => {
    const listed = await api<{ waves: Array<{ id: string; state: string }> }>("/admin/waves");
    assert.ok(listed.waves.length >= 2);
    assert.deepEqual(JSON.parse((await ok(["devices", "wave", "list", "--json"])).stdout), listed);
    const table = (await ok(["devices", "wave", "list"])).stdout.trimEnd().split("\n");
    assert.match(table[0] ?? "", /^ID +STATE +DEVICES +CREATED +WAVE ERRORS +BASELINE ERRORS$/);
    assert.deepEqual(
      table.slice(1).map((l) => l.split(/ +/).slice(0, 2).join(" ")),
      listed.waves.map((w) => `${w.id} ${w.state}`),
    );
    const unknown = await gatewayctl(["devices", "wave", "get", "w999999"]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^error: GW_NOT_FOUND: /);

    const summary = await api<{ waves: { watching: unknown[]; completed: number; rolledBack: number } }>("/admin/migration");
    const status = await ok(["devices", "status"]);
    const { watching, completed, rolledBack } = summary.waves;
    assert.match(status.stdout, new RegExp(`\nwaves: ${watching.length} watching, ${completed} completed, ${rolledBack} rolled back\n$`));
  });

  it("takes the token from GATEWAY_ADMIN_TOKEN_FILE (its trailing newline dropped)", async () => {
    const file = join(dir, "token");
    await writeFile(file, `${TOKEN}\n`, { mode: 0o600 });
    const ran = await ok(["devices", "get", "cli-x-003", "--json"], { GATEWAY_ADMIN_TOKEN_FILE: file });
    assert.equal((JSON.parse(ran.stdout) as Entry).id, "cli-x-003");
    const missing = await gatewayctl(["devices", "status"], { GATEWAY_ADMIN_TOKEN_FILE: join(dir, "absent") });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /GATEWAY_ADMIN_TOKEN_FILE=".*absent" cannot be read \(ENOENT\)/);
  });

  it("refuses --token (exit 2, saying why), and a missing token (exit 2)", async () => {
    const refused = await gatewayctlProcess(["devices", "list", `--token=${TOKEN}`], { GATEWAY_ADMIN_TOKEN: TOKEN });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--token is refused: a command line is visible to every user of the machine/);
    assert.ok(!refused.stderr.includes(TOKEN), "the refusal does not echo the token");
    const none = await gatewayctlProcess(["devices", "list"], {});
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^error: no admin token: set GATEWAY_ADMIN_TOKEN, or GATEWAY_ADMIN_TOKEN_FILE/);
  });

  it("a wrong token: exit 1 with GW_UNAUTHORIZED", async () => {
    const ran = await gatewayctl(["devices", "status"], { GATEWAY_ADMIN_TOKEN: "not-the-token" });
    assert.equal(ran.code, 1);
    assert.equal(ran.stderr, "error: GW_UNAUTHORIZED: wrong bearer token\n");
  });

  it("a gateway that cannot be reached: exit 1, naming the URL and the reason", async () => {
    const port = await freePort();
    const ran = await gatewayctl(["devices", "status", "--url", `http://127.0.0.1:${port}`]);
    assert.equal(ran.code, 1);
    assert.equal(ran.stderr, `error: cannot reach the gateway at http://127.0.0.1:${port}: ECONNREFUSED\n`);
  });

  it("unknown commands and options: exit 2 with the usage", async () => {
    for (const args of [
      ["devices", "teleport"],
      ["fleet", "list"],
      ["devices", "list", "--colour"],
    ]) {
      const ran = await gatewayctl(args);
      assert.equal(ran.code, 2, args.join(" "));
      assert.match(ran.stderr, /^error: .*\n\nusage: gatewayctl devices <command>/);
      assert.equal(ran.stdout, "");
    }
  });

  it("`npx gatewayctl` in the project runs the project's own bin (offline: nothing is fetched)", async () => {
    const ran = await gatewayctlProcess(
      ["devices", "get", "cli-x-004", "--json"],
      { GATEWAY_ADMIN_TOKEN: TOKEN, npm_config_offline: "true" },
      ["npx", "gatewayctl"],
    );
    assert.equal(ran.code, 0, ran.stderr);
    assert.equal((JSON.parse(ran.stdout) as Entry).id, "cli-x-004");
  });
});
