// A throwaway Redis Sentinel deployment (per test file): a primary, one replica and three Sentinels (quorum 2)
// on free ports in one temp dir, all bound to 127.0.0.1, nothing persisted. killPrimary() crashes the current
// primary (SIGKILL) and the Sentinels promote the replica; failover() asks for a planned one (SENTINEL
// FAILOVER). stop() ends every process it started. Debian's redis-server runs a Sentinel with `--sentinel`.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { pollUntil } from "./ports.js";
import { redisCommand } from "./redis.js";
import { dataNodeArgs, startRedisNodes } from "./redis-nodes.js";

export interface SentinelDeployment {
  /** The primary's name in Sentinel (REDIS_SENTINEL_NAME). */
  readonly name: string;
  /** "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3" (REDIS_SENTINELS). */
  readonly sentinelList: string;
  readonly sentinelPorts: readonly number[];
  /** The data nodes' ports (the first started as the primary). */
  readonly dataPorts: readonly number[];
  readonly dir: string;
  /** The port the Sentinels name as primary now (asked of the first Sentinel that answers). */
  primaryPort(): Promise<number>;
  /** SIGKILLs the current primary; returns its port. */
  killPrimary(): Promise<number>;
  /** SIGKILLs the Sentinel on `port` (the data nodes and the other Sentinels keep running). */
  killSentinel(port: number): Promise<void>;
  /** A planned failover (SENTINEL FAILOVER): the replica becomes primary, the old primary its replica. */
  failover(): Promise<void>;
  /**
   * Resolves with the new primary's port once every Sentinel names a primary other than `oldPort` and that
   * node reports `role:master` (bounded by timeoutMs).
   */
  waitForNewPrimary(oldPort: number, timeoutMs?: number): Promise<number>;
  /** Ends every process it started and removes its dir. */
  stop(): Promise<void>;
  /** Recent output of every process, for a failing test's message. */
  output(): string;
}

/** Sentinel's view of `name` from INFO sentinel: "master0:name=…,status=ok,address=H:P,slaves=1,sentinels=3". */
async function sentinelView(port: number, name: string): Promise<{ port: number; slaves: number; sentinels: number; status: string }> {
  const info = await redisCommand(port, ["INFO", "sentinel"]);
  const line = info.split("\r\n").find((l) => l.includes(`name=${name},`));
  const fields = new Map((line?.split(":").slice(1).join(":") ?? "").split(",").map((kv) => kv.split("=") as [string, string]));
  const address = fields.get("address") ?? "";
  return {
    port: Number(address.slice(address.lastIndexOf(":") + 1)),
    slaves: Number(fields.get("slaves") ?? 0),
    sentinels: Number(fields.get("sentinels") ?? 0),
    status: fields.get("status") ?? "",
  };
}

export async function startRedisSentinel(opts: { name?: string } = {}): Promise<SentinelDeployment> {
  const name = opts.name ?? "gateway-primary";
  const servers = await startRedisNodes("redis-sentinel-");
  const { dir, start, stop } = servers;
  try {
    const primary = await start("redis-primary", (port) => dataNodeArgs(dir, port));
    const replica = await start("redis-replica", (port) => [...dataNodeArgs(dir, port), "--replicaof", "127.0.0.1", String(primary)]);
    await pollUntil("the replica to be in sync", async () =>
      (await redisCommand(replica, ["INFO", "replication"])).includes("master_link_status:up"),
    );
    const sentinelPorts: number[] = [];
    for (let i = 0; i < 3; i++) {
      sentinelPorts.push(
        await start("redis-sentinel", async (port) => {
          // Sentinel rewrites its config file (what it learns of replicas and peers): one writable file each.
          const conf = path.join(dir, `sentinel-${port}.conf`);
          await writeFile(
            conf,
            [
              `port ${port}`,
              "bind 127.0.0.1",
              `dir ${dir}`,
              `sentinel monitor ${name} 127.0.0.1 ${primary} 2`,
              // Short, so a test's failover takes seconds; production keeps its own (30 s by default).
              `sentinel down-after-milliseconds ${name} 1000`,
              `sentinel failover-timeout ${name} 10000`,
              `sentinel parallel-syncs ${name} 1`,
              "",
            ].join("\n"),
          );
          return [conf, "--sentinel"];
        }),
      );
    }
    // A failover needs the quorum to see the primary down and a majority to elect a leader: every Sentinel
    // must know the replica and the two others (learnt through INFO and the hello channel) first.
    await pollUntil(
      "every Sentinel to know the replica and the two other Sentinels",
      async () => {
        const views = await Promise.all(sentinelPorts.map((p) => sentinelView(p, name)));
        return views.every((v) => v.status === "ok" && v.port === primary && v.slaves === 1 && v.sentinels === 3);
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );

    const primaryPort = async (): Promise<number> => {
      let lastError: unknown;
      for (const p of sentinelPorts) {
        try {
          return (await sentinelView(p, name)).port;
        } catch (err) {
          lastError = err;
        }
      }
      throw lastError instanceof Error ? lastError : new Error("no Sentinel answered");
    };
    return {
      name,
      sentinelList: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(","),
      sentinelPorts,
      dataPorts: [primary, replica],
      dir,
      primaryPort,
      async killPrimary() {
        const port = await primaryPort();
        await servers.kill(port);
        return port;
      },
      killSentinel: servers.kill,
      async failover() {
        const reply = await redisCommand(sentinelPorts[0]!, ["SENTINEL", "FAILOVER", name]);
        if (reply !== "OK") throw new Error(`SENTINEL FAILOVER answered ${reply}`);
      },
      async waitForNewPrimary(oldPort, timeoutMs = 60_000) {
        return pollUntil(
          `the Sentinels to promote a primary other than 127.0.0.1:${oldPort}`,
          async () => {
            const views = await Promise.all(sentinelPorts.map((p) => sentinelView(p, name)));
            const port = views[0]?.port;
            if (port === undefined || port === oldPort || views.some((v) => v.port !== port)) return undefined;
            return (await redisCommand(port, ["INFO", "replication"])).includes("role:master\r\n") ? port : undefined;
          },
          { timeoutMs, intervalMs: 100 },
        );
      },
      stop,
      output: servers.output,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
