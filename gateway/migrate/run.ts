import { redactUrl } from "../../lib/env.js";
import type { Logger } from "../log.js";
import { isNodeClient, RedisStore, type NodeClient, type RedisClient, type RedisOptions } from "../redis/client.js";
import type { MigrateCliOptions } from "./cli-options.js";
import { formatReport, migrateKeys, type MigrateReport } from "./migrate.js";

/** The name the command's connections give themselves (CLIENT LIST). */
const CONNECTION_NAME = "gateway-migrate-keys";
/** Errors after which a run stops (migrate.ts). */
const MAX_ERRORS = 20;

/**
 * One run of `migrate-keys`: connects to the target as the gateway would (`target`: the Redis part of its
 * Config, so one node, Sentinel and Cluster all work) and to the source, moves the keys, prints the counts.
 * Answers the exit code (0 done, 1 an error: a key not moved, a Redis not reachable; 2 a usage problem)
 * and, when it ran, the counts.
 */
export async function runMigration(
  cli: MigrateCliOptions,
  target: RedisOptions,
  deps: { logger: Logger; print: (line: string) => void; printError: (line: string) => void },
): Promise<{ exitCode: number; report?: MigrateReport }> {
  if (target.cluster && cli.from === undefined) {
    deps.printError(
      "the target is a Redis Cluster: give --from redis://… (the earlier release ran on one node or Sentinel, never on a Cluster)",
    );
    return { exitCode: 2 };
  }
  const fromPrefix = cli.fromPrefix ?? target.keyPrefix;
  const targetStore = new RedisStore({ ...target, connectionName: CONNECTION_NAME }, { logger: deps.logger });
  const sourceStore =
    cli.from === undefined
      ? targetStore
      : new RedisStore(
          {
            url: cli.from,
            keyPrefix: fromPrefix,
            commandTimeoutMs: target.commandTimeoutMs,
            connectionName: CONNECTION_NAME,
            // The CA the deployment trusts (REDIS_TLS_CA_FILE) for a rediss:// source too; its credentials are in its URL.
            ...(target.tlsCa !== undefined ? { tlsCa: target.tlsCa } : {}),
          },
          { logger: deps.logger },
        );
  try {
    if (!(await reachable(targetStore, "the target Redis", deps.printError))) return { exitCode: 1 };
    if (sourceStore !== targetStore && !(await reachable(sourceStore, `--from ${redactUrl(cli.from ?? "")}`, deps.printError)))
      return { exitCode: 1 };
    const source = sourceStore.client;
    if (!isNodeClient(source)) throw new Error("the source is never a Cluster");
    // `--from` naming the target itself is in place too: keys whose name stays must then not be copied onto
    // themselves (and, with --delete-old, deleted).
    const inPlace = sourceStore === targetStore || (await sameServer(source, targetStore.client));
    deps.print(
      `moving keys from ${cli.from === undefined ? "the target itself" : redactUrl(cli.from)} (prefix ${JSON.stringify(fromPrefix)}) ` +
        `to prefix ${JSON.stringify(target.keyPrefix)}${inPlace ? ", in place" : ""}${cli.deleteOld ? ", deleting the old keys" : ""}`,
    );
    const report = await migrateKeys({
      source,
      target: targetStore.client,
      inPlace,
      fromPrefix,
      to: targetStore.keys,
      deleteOld: cli.deleteOld,
      dryRun: cli.dryRun,
      scanCount: cli.scanCount,
      print: deps.print,
      printError: deps.printError,
      maxErrors: MAX_ERRORS,
    });
    for (const line of formatReport(report, cli.dryRun)) deps.print(line);
    return { exitCode: report.errors === 0 ? 0 : 1, report };
  } catch (err) {
    deps.printError(`migration stopped: ${(err as Error).message}`);
    return { exitCode: 1 };
  } finally {
    if (sourceStore !== targetStore) await sourceStore.stop();
    await targetStore.stop();
  }
}

async function reachable(store: RedisStore, what: string, printError: (line: string) => void): Promise<boolean> {
  await store.start();
  if (store.ready) return true;
  printError(`${what} is not reachable`);
  return false;
}

/** Whether the source is one of the target's servers (INFO server's run_id, unique per server process). */
async function sameServer(source: NodeClient, target: RedisClient): Promise<boolean> {
  if (!isNodeClient(target)) return false;
  const [a, b] = await Promise.all([source.info("server"), target.info("server")]);
  return runId(a) !== undefined && runId(a) === runId(b);
}

function runId(info: string): string | undefined {
  return /^run_id:(\w+)/m.exec(info)?.[1];
}
