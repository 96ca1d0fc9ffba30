import { parseArgs } from "node:util";
import { isUrlWith, redactUrl } from "../../lib/env.js";

export interface MigrateCliOptions {
  /** `--from`: the Redis holding the earlier release's keys; absent: the target itself (in place). */
  from?: string;
  /** `--from-prefix`: their REDIS_KEY_PREFIX; absent: the target's. */
  fromPrefix?: string;
  deleteOld: boolean;
  dryRun: boolean;
  /** `--count`: SCAN's COUNT. */
  scanCount: number;
}

export const USAGE = `usage: npm run migrate-keys -- [options]   (or: node dist/gateway/migrate-keys.js [options])

Moves the Redis keys an earlier release wrote (before hash tags) to this release's names. The target is the
Redis the gateway's environment names (REDIS_URL, REDIS_SENTINELS…, REDIS_CLUSTER_NODES…, REDIS_KEY_PREFIX).
Run it with every instance of the earlier release stopped, before this release starts (README, "Redis keys,
and Redis Cluster").

options:
  --from redis://…     the Redis holding the old keys (one node); default: the target itself, unless the
                       target is a Cluster
  --from-prefix TEXT   the old keys' REDIS_KEY_PREFIX; default: the target's
  --dry-run            change nothing; print each key it would move or delete
  --delete-old         delete each old key once its new name holds it
  --count N            keys SCAN looks at per round trip (default 1000)
  --help               this text`;

/** The command line, or a problem to print beside USAGE; `help` when asked for it. */
export function parseMigrateArgs(args: string[]): MigrateCliOptions | { problem: string } | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        from: { type: "string" },
        "from-prefix": { type: "string" },
        "delete-old": { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        count: { type: "string" },
        help: { type: "boolean", default: false },
      },
    });
  } catch (err) {
    return { problem: (err as Error).message };
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (v.from !== undefined && !isUrlWith(v.from, ["redis:", "rediss:"])) {
    return { problem: `--from ${JSON.stringify(redactUrl(v.from))} is not a redis:// or rediss:// URL` };
  }
  const scanCount = v.count === undefined ? 1000 : Number(v.count);
  if (!Number.isInteger(scanCount) || scanCount < 1 || scanCount > 100_000) {
    return { problem: `--count ${JSON.stringify(v.count)} is not a whole number from 1 to 100000` };
  }
  return {
    ...(v.from !== undefined ? { from: v.from } : {}),
    ...(v["from-prefix"] !== undefined ? { fromPrefix: v["from-prefix"] } : {}),
    deleteOld: v["delete-old"],
    dryRun: v["dry-run"],
    scanCount,
  };
}
