// `npm run bench -- --failover`: what Redis's asynchronous replication loses when a Sentinel-managed primary
// crashes, and what `WAIT 1` costs to close that gap (README, "Redis Sentinel").
//
// Each trial starts a fresh deployment (a primary, a replica, three Sentinels: local-stack/redis-sentinel.ts),
// runs WRITERS concurrent loops writing one new key per step as fast as the primary answers (the writes the
// gateway makes that guard against a second actuation are of that shape: one small key per request), SIGKILLs
// the primary while they run, waits for the Sentinels to promote the replica, and counts the writes the old
// primary acknowledged that the new one does not have. Variants: a plain write; the write followed by
// `WAIT 1 <timeout>` on the same connection, counted as acknowledged only when WAIT reports the replica has it.
import { Redis } from "ioredis";
import { setTimeout as pause } from "node:timers/promises";
import { redisCommand } from "../../local-stack/redis.js";
import { startRedisSentinel } from "../../local-stack/redis-sentinel.js";
import type { Teardown } from "../../test/helpers/stack.js";
import { progress } from "../common/progress.js";
import { summarize, type LatencySummary } from "../common/stats.js";
import { runKeyedRequests, type KeyedTrial } from "./keyed-requests.js";

/** Concurrent writers on one connection (auto-pipelined, as the gateway's client is). */
const WRITERS = 64;
/** How long the writers run before the crash. */
const WRITE_MS = 3_000;
/**
 * For this long before the crash the replication link is down (the primary drops it, as a network blip
 * would, and the replica cannot reconnect). Without a broken link nothing is lost on
 * loopback: Redis writes to its replicas before it answers its clients, and a SIGKILLed process's kernel
 * still delivers what it had written to the replica's socket.
 */
const LAG_MS = 200;
const WAIT_TIMEOUT_MS = 100;

export type FailoverVariant = "write" | "write + WAIT 1";

export interface FailoverTrial {
  variant: FailoverVariant;
  /** Writes acknowledged before the crash (with WAIT: acknowledged by the replica too). */
  acknowledged: number;
  /** Acknowledged writes the promoted replica does not have. */
  lost: number;
  /** With WAIT: writes whose WAIT reported no replica within its timeout (not counted as acknowledged). */
  unreplicated: number;
  ratePerS: number;
  latencyMs: LatencySummary;
  /** From the crash until the Sentinels named the replica primary. */
  promotionMs: number;
}

export interface FailoverReport {
  startedAt: string;
  /** The same choice through the gateway: keyed POSTs with REDIS_WAIT_REPLICAS=0 and =1. */
  keyed: KeyedTrial[];
  writers: number;
  writeMs: number;
  lagMs: number;
  waitTimeoutMs: number;
  trials: FailoverTrial[];
}

async function trial(variant: FailoverVariant, teardown: Teardown): Promise<FailoverTrial> {
  const deployment = await startRedisSentinel();
  teardown.stopLater(`redis sentinel (${variant})`, deployment); // on an interruption; stopped below otherwise
  const primaryPort = await deployment.primaryPort();
  const client = new Redis({
    port: primaryPort,
    host: "127.0.0.1",
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
  });
  client.on("error", () => undefined); // the crash is the point: its errors end the writers below
  await client.connect();
  const acked: string[] = [];
  const latencies: number[] = [];
  let unreplicated = 0;
  let crashed = false;
  let seq = 0;
  const startedAt = performance.now();
  let crashAt = Number.POSITIVE_INFINITY;
  const writer = async (w: number): Promise<void> => {
    while (!crashed) {
      const key = `k:${w}:${seq++}`;
      const t = performance.now();
      try {
        if (variant === "write") await client.set(key, "1");
        else {
          // WAIT blocks this connection until the replica has every write sent on it so far, or the timeout.
          const replies = await client.pipeline().set(key, "1").call("WAIT", 1, WAIT_TIMEOUT_MS).exec();
          const [setReply, waitReply] = replies ?? [];
          if (!setReply || setReply[0] || !waitReply || waitReply[0]) return;
          if (Number(waitReply[1]) < 1) {
            unreplicated++;
            continue;
          }
        }
      } catch {
        return;
      }
      if (performance.now() < crashAt) {
        acked.push(key);
        latencies.push(performance.now() - t);
      }
    }
  };
  const loops = Array.from({ length: WRITERS }, (_, w) => writer(w));
  await pause(WRITE_MS - LAG_MS);
  // The replica's reconnections fail (it offers a password the primary does not have) until the primary is gone.
  const replicaPort = deployment.dataPorts.find((p) => p !== primaryPort) as number;
  await redisCommand(replicaPort, ["CONFIG", "SET", "masterauth", "not-the-primarys"]);
  await redisCommand(primaryPort, ["CLIENT", "KILL", "TYPE", "replica"]);
  await pause(LAG_MS);
  crashAt = performance.now();
  const old = await deployment.killPrimary();
  crashed = true;
  await Promise.all(loops);
  client.disconnect();
  const promoted = await deployment.waitForNewPrimary(old);
  const promotionMs = Math.round(performance.now() - crashAt);
  const reader = new Redis({ port: promoted, host: "127.0.0.1", maxRetriesPerRequest: 0 });
  let lost = 0;
  try {
    for (let i = 0; i < acked.length; i += 1000) {
      const batch = acked.slice(i, i + 1000);
      const found = await reader.exists(...batch);
      lost += batch.length - found;
    }
  } finally {
    reader.disconnect();
  }
  await deployment.stop();
  return {
    variant,
    acknowledged: acked.length,
    lost,
    unreplicated,
    ratePerS: Math.round(acked.length / ((crashAt - startedAt) / 1000)),
    latencyMs: summarize(latencies),
    promotionMs,
  };
}

export async function runFailover(trials: number, durationS: number, teardown: Teardown): Promise<FailoverReport> {
  const report: FailoverReport = {
    startedAt: new Date().toISOString(),
    writers: WRITERS,
    writeMs: WRITE_MS,
    lagMs: LAG_MS,
    waitTimeoutMs: WAIT_TIMEOUT_MS,
    trials: [],
    keyed: [],
  };
  for (let i = 0; i < trials; i++) {
    // Alternating, so that a machine getting busier or quieter weighs on both variants alike.
    for (const variant of ["write", "write + WAIT 1"] as const) {
      progress(`failover trial ${i + 1}/${trials}: ${variant}`);
      report.trials.push(await trial(variant, teardown));
    }
  }
  report.keyed = await runKeyedRequests(trials, durationS, teardown);
  return report;
}
