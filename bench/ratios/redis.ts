// The Redis the default run's gateway uses (`--redis`): one redis-server (the harness's), a Sentinel deployment
// (a primary, a replica, three Sentinels: local-stack/redis-sentinel.ts) or a Cluster (three primaries, a
// replica each: local-stack/redis-cluster.ts), with the gateway settings that reach it (the README's "Redis
// Sentinel" and "Redis Cluster") and every redis-server process of it, whose CPU the report sums: a
// replica applies every write, and a Sentinel answers the gateway's discovery and watches the primary.
import type { Env } from "../../lib/env.js";
import { redisCommand, startRedis } from "../../local-stack/redis.js";
import { startRedisCluster } from "../../local-stack/redis-cluster.js";
import { startRedisSentinel } from "../../local-stack/redis-sentinel.js";
import type { RedisKind } from "../common/args.js";

export interface BenchRedis {
  kind: RedisKind;
  /** REDIS_URL for the harness's gateway helper; "" when the gateway reaches Redis through `env` instead. */
  url: string;
  /** The gateway's Redis settings beyond `url`. */
  env: Env;
  /** Every redis-server process of the deployment. */
  pids: number[];
  /** In words, for the report. */
  description: string;
  stop(): Promise<void>;
}

/** The PID a redis-server (or Sentinel) reports of itself (INFO server, process_id). */
async function pidOf(port: number): Promise<number> {
  const info = await redisCommand(port, ["INFO", "server"]);
  const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`redis-server on port ${port} reports no process_id`);
  return pid;
}

export async function startBenchRedis(kind: RedisKind): Promise<BenchRedis> {
  if (kind === "single") {
    const redis = await startRedis();
    return { kind, url: redis.url, env: {}, pids: [redis.pid], description: "one redis-server", stop: () => redis.stop() };
  }
  if (kind === "sentinel") {
    const sentinel = await startRedisSentinel();
    try {
      const ports = [...sentinel.dataPorts, ...sentinel.sentinelPorts];
      return {
        kind,
        url: "",
        env: { REDIS_URL: undefined, REDIS_SENTINELS: sentinel.sentinelList, REDIS_SENTINEL_NAME: sentinel.name },
        pids: await Promise.all(ports.map(pidOf)),
        description: `Sentinel: a primary, a replica and ${sentinel.sentinelPorts.length} Sentinels (${ports.length} redis-server processes)`,
        stop: () => sentinel.stop(),
      };
    } catch (err) {
      await sentinel.stop();
      throw err;
    }
  }
  const cluster = await startRedisCluster();
  try {
    return {
      kind,
      url: "",
      env: { REDIS_URL: undefined, REDIS_CLUSTER_NODES: cluster.nodes },
      pids: await Promise.all(cluster.ports.map(pidOf)),
      description: `Cluster: ${cluster.ports.length / 2} primaries and a replica each (${cluster.ports.length} redis-server processes)`,
      stop: () => cluster.stop(),
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}
