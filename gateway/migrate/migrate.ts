import type { NodeClient, RedisClient } from "../redis/client.js";
import type { RedisKeys } from "../redis/keys.js";
import { familyScans, mapOldKey, oldOnlineKey, type Family, type FamilyScan } from "./key-map.js";

/** Keys moved at once (their DUMP and RESTORE pipelined together). */
const IN_FLIGHT = 100;

export interface MigrateOptions {
  /** Where the earlier release's keys are: one node or a Sentinel-followed primary (it never ran on a Cluster). */
  source: NodeClient;
  /** Where this release reads them: the same connection for an in-place run, or a Cluster. */
  target: RedisClient;
  /** Whether source and target are one server: keys whose name does not change are then left alone. */
  inPlace: boolean;
  fromPrefix: string;
  /** The new names, with the target's prefix. */
  to: RedisKeys;
  /** DEL an old key once the new one holds it (moved now, or there already). */
  deleteOld: boolean;
  /** Read only: say what would be done. */
  dryRun: boolean;
  /** SCAN's COUNT: keys looked at per round trip. */
  scanCount: number;
  /** One line of what is done (dry run: of what would be done). */
  print: (line: string) => void;
  /** One line per error. */
  printError: (line: string) => void;
  /**
   * Past this many errors the run stops (throws): errors that many in a row are a cause of their own (the
   * user may not RESTORE, the target refuses the source's DUMP format), not worth one line per key.
   */
  maxErrors: number;
}

export interface FamilyCounts {
  /** Copied under the new name (dry run: would be). */
  moved: number;
  /** The new name holds a key already: left as it is (RESTORE without REPLACE). */
  exists: number;
  /** Met by the scan but not moved: of the new layout, unchanged in place, or gone before it was read. */
  skipped: number;
  /** Old keys deleted (--delete-old; dry run: would be). */
  deleted: number;
  errors: number;
}

export interface MigrateReport {
  families: Array<{ family: Family | "online"; counts: FamilyCounts }>;
  errors: number;
}

/**
 * Moves the earlier release's persistent keys to their new names: for each old key (SCAN with MATCH, never
 * KEYS), DUMP and PTTL on the source, RESTORE with that TTL on the target under the new name (no REPLACE:
 * a key already there is counted "exists" and kept), and with deleteOld, DEL of the old key. Values are moved
 * byte for byte (DUMP's serialization), so the target must run the source's Redis version or a later one.
 * Safe to repeat: a key moved before is "exists" (or, deleted with deleteOld, no longer found).
 * The gateway must not be running meanwhile (README, "Redis keys, and Redis Cluster").
 */
export async function migrateKeys(opts: MigrateOptions): Promise<MigrateReport> {
  const report: MigrateReport = { families: [], errors: 0 };
  for (const scan of familyScans(opts.fromPrefix)) {
    const counts = emptyCounts();
    report.families.push({ family: scan.family, counts });
    // In place under one prefix, these already have their new names.
    if (scan.sameName && opts.inPlace && opts.fromPrefix === opts.to.prefix) continue;
    for await (const keys of oldKeys(opts, scan)) {
      // A bounded number of keys (and their values) in flight at once.
      for (let i = 0; i < keys.length; i += IN_FLIGHT) {
        await Promise.all(keys.slice(i, i + IN_FLIGHT).map((key) => moveOne(opts, key, counts)));
        if (report.errors + counts.errors > opts.maxErrors) {
          throw new Error(
            `more than ${opts.maxErrors} errors (see above): stopped at family ${scan.family}; fix the cause and run it again`,
          );
        }
      }
    }
    report.errors += counts.errors;
  }
  const online = emptyCounts();
  report.families.push({ family: "online", counts: online });
  if (opts.deleteOld) await deleteOnline(opts, online);
  report.errors += online.errors;
  // Counted again from the moved records by the gateway's first read (registry/transport-counts.ts): counts
  // a gateway of this release may have made before the move (from records it could not see yet) would stay wrong.
  if (!opts.dryRun) await opts.target.del(opts.to.transportCounts());
  return report;
}

/** Batches of the family's keys on the source: SCAN (MATCH, COUNT) for a family, one EXISTS for one key. */
async function* oldKeys(opts: MigrateOptions, scan: FamilyScan): AsyncGenerator<string[]> {
  if (scan.kind === "exact") {
    if ((await opts.source.exists(scan.pattern)) === 1) yield [scan.pattern];
    return;
  }
  // SCAN may return a key twice (keys added or the table resized meanwhile): each is done once.
  const seen = new Set<string>();
  let cursor = "0";
  do {
    const [next, found] = await opts.source.scan(cursor, "MATCH", scan.pattern, "COUNT", opts.scanCount);
    cursor = next;
    const fresh = found.filter((k) => !seen.has(k));
    for (const k of fresh) seen.add(k);
    if (fresh.length > 0) yield fresh;
  } while (cursor !== "0");
}

async function moveOne(opts: MigrateOptions, oldKey: string, counts: FamilyCounts): Promise<void> {
  const mapping = mapOldKey(oldKey, opts.fromPrefix, opts.to);
  if (mapping === undefined || "skip" in mapping || (opts.inPlace && mapping.newKey === oldKey)) {
    counts.skipped++;
    return;
  }
  const { newKey } = mapping;
  try {
    let outcome: "moved" | "exists" | "gone";
    if (opts.dryRun) {
      const [there, present] = await Promise.all([opts.target.exists(newKey), opts.source.exists(oldKey)]);
      outcome = present === 0 ? "gone" : there === 1 ? "exists" : "moved";
    } else {
      outcome = await copy(opts, oldKey, newKey);
    }
    if (outcome === "gone") {
      counts.skipped++;
      return;
    }
    counts[outcome]++;
    if (opts.dryRun) opts.print(`${outcome === "moved" ? "would move" : "exists"}: ${oldKey} -> ${newKey}`);
    // Never the key just written: in place, a name that did not change is skipped above.
    if (opts.deleteOld && !(opts.inPlace && newKey === oldKey)) {
      if (opts.dryRun) opts.print(`would delete: ${oldKey}`);
      else await opts.source.del(oldKey);
      counts.deleted++;
    }
  } catch (err) {
    counts.errors++;
    opts.printError(`error: ${oldKey} -> ${newKey}: ${(err as Error).message}`);
  }
}

/** DUMP + PTTL, then RESTORE with the TTL left (0: none) under the new name. */
async function copy(opts: MigrateOptions, oldKey: string, newKey: string): Promise<"moved" | "exists" | "gone"> {
  const [payload, pttl] = await Promise.all([opts.source.dumpBuffer(oldKey), opts.source.pttl(oldKey)]);
  // Expired or deleted since the scan (PTTL -2: no such key; -1: no expiry).
  if (payload === null || pttl === -2) return "gone";
  try {
    await opts.target.restore(newKey, pttl > 0 ? pttl : 0, payload);
    return "moved";
  } catch (err) {
    if ((err as Error).message.startsWith("BUSYKEY")) return "exists";
    throw err;
  }
}

async function deleteOnline(opts: MigrateOptions, counts: FamilyCounts): Promise<void> {
  const key = oldOnlineKey(opts.fromPrefix);
  // In place under one prefix there is no clash: this release's presence sets are `online:<bucket>`.
  try {
    if ((await opts.source.type(key)) !== "zset") return;
    if (opts.dryRun) opts.print(`would delete: ${key}`);
    else await opts.source.del(key);
    counts.deleted++;
  } catch (err) {
    counts.errors++;
    opts.printError(`error: ${key}: ${(err as Error).message}`);
  }
}

function emptyCounts(): FamilyCounts {
  return { moved: 0, exists: 0, skipped: 0, deleted: 0, errors: 0 };
}

/** The report as a table: one line per family, then a total of errors. */
export function formatReport(report: MigrateReport, dryRun: boolean): string[] {
  const head = dryRun ? "dry run, nothing written; counts say what would be done" : "done";
  const lines = [head, `${"family".padEnd(12)} ${["moved", "exists", "skipped", "deleted", "errors"].map((h) => h.padStart(8)).join(" ")}`];
  for (const { family, counts } of report.families) {
    const cells = [counts.moved, counts.exists, counts.skipped, counts.deleted, counts.errors].map((n) => String(n).padStart(8));
    lines.push(`${family.padEnd(12)} ${cells.join(" ")}`);
  }
  lines.push(report.errors === 0 ? "no errors" : `${report.errors} error(s), each printed above`);
  return lines;
}
