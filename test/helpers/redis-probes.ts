// What a test asks a Redis node directly, beside the gateway: its command counts, and the gateway's answers per
// device, its sharded subscribers, for the tests that fail Redis over (Sentinel, Cluster).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import type { EchoReport } from "./echo-device.js";

/** Bound for a loaded machine on a Redis Cluster's failover (a primary is failed after 1 s unreachable, then a replica is elected). */
export const FAILOVER_BOUND_MS = 60_000;

/** Sharded subscribers of `channel` on the node at `port` (PUBSUB SHARDNUMSUB, Redis 7.0). */
export async function shardSubscribers(port: number, channel: string): Promise<number> {
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await client.connect();
    const reply = (await client.call("PUBSUB", "SHARDNUMSUB", channel)) as [string, number];
    return Number(reply[1]);
  } finally {
    client.disconnect();
  }
}

/** `calls` of EVAL, EVALSHA and SPUBLISH and `count` of NOSCRIPT replies on the node at `port` (INFO commandstats, errorstats). */
export async function commandCounts(port: number): Promise<{ eval: number; evalsha: number; spublish: number; noscript: number }> {
  const client = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
  try {
    await client.connect();
    const stats = (await client.info("commandstats")) + (await client.info("errorstats"));
    const count = (pattern: RegExp): number => Number(pattern.exec(stats)?.[1] ?? 0);
    return {
      eval: count(/^cmdstat_eval:calls=(\d+)/m),
      evalsha: count(/^cmdstat_evalsha:calls=(\d+)/m),
      spublish: count(/^cmdstat_spublish:calls=(\d+)/m),
      noscript: count(/^errorstat_NOSCRIPT:count=(\d+)/m),
    };
  } finally {
    client.disconnect();
  }
}

/**
 * One GET of `/{path}?token=…` per echo device (echo-device.ts) through the gateway at `base`, each with a token
 * of its own: every answer must be 200 with that device's report of that token.
 */
export async function serveEveryDevice(base: string, devices: readonly string[], path: string): Promise<void> {
  await Promise.all(
    devices.map(async (device) => {
      const token = randomBytes(6).toString("hex");
      const res = await fetch(`${base}/devices/${device}/${path}?token=${token}`, { signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      assert.equal(res.status, 200, `${device}: ${text}`);
      const report = JSON.parse(text) as EchoReport;
      assert.equal(report.device, device);
      assert.equal(report.url, `/${path}?token=${token}`);
    }),
  );
}
