// migrate-keys against a real Redis: the keys the release before hash tags wrote are moved to this release's
// names, in place and from another Redis (another prefix), and this release's stores read them (registry, a
// legacy address, a kept Idempotency-Key outcome, the offline queue), TTLs kept. A dry run writes nothing;
// a second run moves nothing; --delete-old leaves only the new names and the short-lived keys.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { after, before, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { RedisStore, type RedisOptions } from "../../gateway/redis/client.js";
import { runMigration } from "../../gateway/migrate/run.js";
import { migrateKeys } from "../../gateway/migrate/migrate.js";
import type { MigrateCliOptions } from "../../gateway/migrate/cli-options.js";
import type { FamilyCounts } from "../../gateway/migrate/migrate.js";
import { assertMovedDataServes, idemHash, JIDS, oldKeys, writeOldLayout } from "../helpers/old-redis-layout.js";

const logger = pino({ level: "silent" });

async function migrate(target: RedisOptions, cli: Partial<MigrateCliOptions> = {}) {
  const out: string[] = [];
  const errors: string[] = [];
  const result = await runMigration({ deleteOld: false, dryRun: false, scanCount: 3, ...cli }, target, {
    logger,
    print: (line) => out.push(line),
    printError: (line) => errors.push(line),
  });
  const counts = Object.fromEntries((result.report?.families ?? []).map((f) => [f.family, f.counts])) as Record<string, FamilyCounts>;
  return { ...result, out, errors, counts };
}

const only = (counts: Record<string, FamilyCounts>, field: keyof FamilyCounts) =>
  Object.fromEntries(Object.entries(counts).flatMap(([family, c]) => (c[field] > 0 ? [[family, c[field]]] : [])));

describe("migrate-keys in place (one Redis, one prefix)", () => {
  let server: RedisServer;
  let store: RedisStore;
  let target: RedisOptions;
  const old = oldKeys("gw:");
  const allKeys = async () => (await store.run((c) => c.keys("*"))).sort();

  before(async () => {
    server = await startRedis();
    target = { url: server.url, keyPrefix: "gw:", commandTimeoutMs: 2000 };
    store = new RedisStore(target, { logger });
    await store.start();
    await writeOldLayout(store.client as never, "gw:");
    // Written by this release already (it ran before the migration): left as it is.
    await store.run((c) => c.set(store.keys.idempotency("dev-1", idemHash("key-2")), "new"));
    await store.run((c) => c.set(old.idem("dev-1", idemHash("key-2")), "old"));
  });
  after(async () => {
    await store.stop();
    await server.stop();
  });

  it("a dry run writes nothing, and says what it would move", async () => {
    const before = await allKeys();
    const run = await migrate(target, { dryRun: true, deleteOld: true });
    assert.equal(run.exitCode, 0, run.errors.join("\n"));
    assert.deepEqual(await allKeys(), before, "no key changed");
    assert.ok(run.out.includes("would move: gw:device:dev-1 -> gw:device:{dev-1}"), run.out.join("\n"));
    assert.ok(run.out.includes("would delete: gw:online"), run.out.join("\n"));
    assert.equal(run.counts.device?.moved, 3);
  });

  it("moves every persistent key to its new name, and leaves existing new keys and short-lived keys alone", async () => {
    const run = await migrate(target);
    assert.equal(run.exitCode, 0, [...run.out, ...run.errors].join("\n"));
    assert.deepEqual(only(run.counts, "moved"), { device: 3, legacy: 1, idem: 1, queue: 2, queuebytes: 2, queued: 1, queuedbytes: 1 });
    assert.deepEqual(only(run.counts, "exists"), { idem: 1 });
    // The queue of `{x@…/y}`: its old name is the new name of `x@…/y`'s queue. (A scan may also meet the new
    // per-JID keys written while it goes on, which are skipped too.)
    const skipped = only(run.counts, "skipped");
    assert.ok((skipped.queue ?? 0) >= 1 && (skipped.queuebytes ?? 0) >= 1, JSON.stringify(skipped));
    assert.deepEqual(Object.keys(skipped).sort(), ["queue", "queuebytes"]);
    assert.deepEqual(only(run.counts, "deleted"), {});
    assert.equal(
      await store.run((c) => c.get(store.keys.idempotency("dev-1", idemHash("key-2")))),
      "new",
      "an existing key is not replaced",
    );
    assert.equal(await store.run((c) => c.exists(old.device("dev-1"))), 1, "without --delete-old the old keys stay");
    assert.equal(await store.run((c) => c.exists("gw:corr:{abc}", "gw:seen:{dev-2@devices.example.com/agent}", "gw:inflight:{dev-1}")), 0);
  });

  it("a second run moves nothing", async () => {
    const run = await migrate(target);
    assert.equal(run.exitCode, 0);
    assert.deepEqual(only(run.counts, "moved"), {});
    assert.deepEqual(only(run.counts, "exists"), { device: 3, legacy: 1, idem: 2, queue: 2, queuebytes: 2, queued: 1, queuedbytes: 1 });
  });

  it("--delete-old removes the old names (and the old presence set), then there is nothing left to do", async () => {
    const run = await migrate(target, { deleteOld: true });
    assert.equal(run.exitCode, 0);
    assert.deepEqual(only(run.counts, "deleted"), {
      device: 3,
      legacy: 1,
      idem: 2,
      queue: 2,
      queuebytes: 2,
      queued: 1,
      queuedbytes: 1,
      online: 1,
    });
    const left = await allKeys();
    const oldNames = left.filter(
      (k) => /^gw:(device|legacy|idem|queue|queuebytes):[^{]/.test(k) || /^gw:(queued|queuedbytes|online)$/.test(k),
    );
    assert.deepEqual(oldNames, [], "no old name is left");
    assert.ok(left.includes("gw:devices") && left.includes("gw:request:r-1") && left.includes("gw:shadow:mismatches"), "kept names stay");
    assert.ok(left.includes(old.exchange("abc")) && left.includes(old.inflight("dev-1")), "short-lived keys are not touched");
    assert.ok(left.includes(`gw:queue:${JIDS.ambiguous}`), "the key that reads as a new one stays");

    const again = await migrate(target, { deleteOld: true });
    assert.equal(again.exitCode, 0);
    assert.deepEqual(only(again.counts, "moved"), {});
    assert.deepEqual(only(again.counts, "deleted"), {});
    assert.deepEqual(await allKeys(), left);
  });

  it("this release's stores serve what was moved", async () => {
    await assertMovedDataServes(store);
  });

  it("runs as a command with the gateway's environment, which needs no XMPP secret", async () => {
    const run = promisify(execFile);
    const env = { PATH: process.env.PATH, REDIS_URL: server.url, REDIS_KEY_PREFIX: "gw:" };
    const { stdout } = await run(process.execPath, ["--import", "tsx", "gateway/migrate-keys.ts", "--dry-run"], { env, timeout: 60_000 });
    assert.match(stdout, /^dry run, nothing written/m);
    assert.match(stdout, /^no errors$/m);
    await assert.rejects(
      run(process.execPath, ["--import", "tsx", "gateway/migrate-keys.ts", "--frm", "x"], { env, timeout: 60_000 }),
      (err: { code?: number; stderr?: string }) => err.code === 2 && /usage: npm run migrate-keys/.test(err.stderr ?? ""),
    );
  });
});

describe("migrate-keys from another Redis, under another prefix", () => {
  let source: RedisServer;
  let server: RedisServer;
  let sourceStore: RedisStore;
  let store: RedisStore;
  let target: RedisOptions;

  before(async () => {
    [source, server] = await Promise.all([startRedis(), startRedis()]);
    sourceStore = new RedisStore({ url: source.url, keyPrefix: "old:", commandTimeoutMs: 2000 }, { logger });
    target = { url: server.url, keyPrefix: "gw:", commandTimeoutMs: 2000 };
    store = new RedisStore(target, { logger });
    await Promise.all([sourceStore.start(), store.start()]);
    await writeOldLayout(sourceStore.client as never, "old:");
  });
  beforeEach(async () => {
    await store.run((c) => c.flushdb());
  });
  after(async () => {
    await Promise.all([sourceStore.stop(), store.stop()]);
    await Promise.all([source.stop(), server.stop()]);
  });

  it("copies every persistent key, kept names too, and this release's stores serve them", async () => {
    const run = await migrate(target, { from: source.url, fromPrefix: "old:" });
    assert.equal(run.exitCode, 0, [...run.out, ...run.errors].join("\n"));
    assert.deepEqual(only(run.counts, "moved"), {
      device: 3,
      devices: 1,
      legacy: 1,
      idem: 1,
      queue: 2,
      queuebytes: 2,
      queued: 1,
      queuedbytes: 1,
      request: 1,
      shadow: 1,
    });
    assert.equal(await sourceStore.run((c) => c.exists("old:device:dev-1")), 1, "the source is left as it was");
    await assertMovedDataServes(store);
  });

  it("--from naming the target itself is in place: a name that does not change is neither copied nor deleted", async () => {
    await writeOldLayout(store.client as never, "gw:");
    const run = await migrate(target, { from: server.url, deleteOld: true });
    assert.equal(run.exitCode, 0, [...run.out, ...run.errors].join("\n"));
    assert.deepEqual(only(run.counts, "deleted").devices, undefined);
    assert.equal(await store.run((c) => c.scard("gw:devices")), 3, "the device set is still there");
    assert.equal(await store.run((c) => c.exists("gw:request:r-1", "gw:shadow:mismatches")), 2);
  });

  it("a key the target refuses is an error, and a run with too many stops", async () => {
    await store.run((c) => c.call("ACL", "SETUSER", "mover", "on", ">pw", "~*", "&*", "+@all", "-restore"));
    const limited = { ...target, username: "mover", password: "pw" };
    const run = await migrate(limited, { from: source.url, fromPrefix: "old:" });
    assert.equal(run.exitCode, 1);
    assert.match(run.errors.join("\n"), /^error: old:device:dev-1 -> gw:device:\{dev-1\}: NOPERM/m);
    assert.equal(run.report?.errors, run.errors.length, "one line per error");
    assert.equal(await store.run((c) => c.dbsize()), 0);

    const limitedStore = new RedisStore(limited, { logger });
    await limitedStore.start();
    try {
      await assert.rejects(
        migrateKeys({
          source: sourceStore.client as never,
          target: limitedStore.client,
          inPlace: false,
          fromPrefix: "old:",
          to: limitedStore.keys,
          deleteOld: true,
          dryRun: false,
          scanCount: 100,
          print: () => undefined,
          printError: () => undefined,
          maxErrors: 2,
        }),
        /more than 2 errors/,
      );
    } finally {
      await limitedStore.stop();
    }
    assert.equal(await sourceStore.run((c) => c.exists("old:device:dev-1")), 1, "a key not moved is not deleted");
  });

  it("a source that does not answer is an error, and nothing is written", async () => {
    const run = await migrate(target, { from: "redis://127.0.0.1:1" });
    assert.equal(run.exitCode, 1);
    assert.match(run.errors.join("\n"), /--from redis:\/\/127\.0\.0\.1:1 is not reachable/);
    assert.equal(await store.run((c) => c.dbsize()), 0);
  });
});
