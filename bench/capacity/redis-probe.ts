// What the Redis server itself says it did: calls and microseconds per command (INFO commandstats), memory
// in use (INFO memory), and the size of single keys (MEMORY USAGE). The probe's own commands (INFO, MEMORY,
// SCAN, and what ioredis sends on connect) are left out of every count, so a delta is the gateway's alone.
import { setTimeout as delay } from "node:timers/promises";
import { Redis } from "ioredis";

/** Commands the probe (or a client's connection set-up) issues, never the gateway per request. */
const PROBE_COMMANDS = new Set(["info", "memory", "scan", "ping", "client", "hello", "select", "config", "command", "dbsize"]);

export interface CommandStats {
  /** Calls per command name (lower case as Redis reports them, e.g. "evalsha", "get"). */
  calls: Record<string, number>;
  /** Microseconds Redis spent executing each command (its own accounting, not the I/O around it). */
  usec: Record<string, number>;
}

export interface RedisProbe {
  commandStats(): Promise<CommandStats>;
  /** INFO memory used_memory, in bytes. */
  usedMemory(): Promise<number>;
  /** MEMORY USAGE of the first key matching `pattern` (SCAN), with the key; undefined when none matches. */
  sampleKey(pattern: string): Promise<{ key: string; bytes: number } | undefined>;
  /** MEMORY USAGE of one key (SAMPLES 0: every element of a collection counted). */
  keyBytes(key: string): Promise<number | undefined>;
  /** Waits until the gateway's commands stop coming (fewer than `slack` in `quietMs`), within `boundMs`. */
  quiesce(quietMs?: number, slack?: number, boundMs?: number): Promise<void>;
  close(): Promise<void>;
}

export function parseCommandStats(info: string): CommandStats {
  const calls: Record<string, number> = {};
  const usec: Record<string, number> = {};
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    // Redis 7 names subcommands "memory|usage", "client|setname": the command is the part before the bar.
    if (!m || PROBE_COMMANDS.has((m[1] ?? "").split("|")[0] ?? "")) continue;
    const name = (m[1] ?? "").replace("|", " ");
    calls[name] = Number(m[2]);
    usec[name] = Number(m[3]);
  }
  return { calls, usec };
}

/** after - before, per command, zeros left out. */
export function diffStats(before: CommandStats, after: CommandStats): CommandStats {
  const calls: Record<string, number> = {};
  const usec: Record<string, number> = {};
  for (const name of Object.keys(after.calls)) {
    const n = (after.calls[name] ?? 0) - (before.calls[name] ?? 0);
    if (n <= 0) continue;
    calls[name] = n;
    usec[name] = (after.usec[name] ?? 0) - (before.usec[name] ?? 0);
  }
  return { calls, usec };
}

export const totalCalls = (s: CommandStats): number => Object.values(s.calls).reduce((a, b) => a + b, 0);
export const totalUsec = (s: CommandStats): number => Object.values(s.usec).reduce((a, b) => a + b, 0);

export function redisProbe(url: string): RedisProbe {
  const client = new Redis(url, { lazyConnect: false, enableReadyCheck: false, maxRetriesPerRequest: 1 });
  client.on("error", () => undefined);
  const commandStats = async (): Promise<CommandStats> => parseCommandStats(await client.info("commandstats"));
  const keyBytes = async (key: string): Promise<number | undefined> => {
    const n = (await client.call("MEMORY", "USAGE", key, "SAMPLES", "0")) as number | null;
    return n === null ? undefined : Number(n);
  };
  return {
    commandStats,
    async usedMemory() {
      const m = /^used_memory:(\d+)/m.exec(await client.info("memory"));
      if (!m) throw new Error("INFO memory has no used_memory");
      return Number(m[1]);
    },
    async sampleKey(pattern) {
      let cursor = "0";
      do {
        const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        const key = keys[0];
        if (key !== undefined) {
          const bytes = await keyBytes(key);
          return bytes === undefined ? undefined : { key, bytes };
        }
      } while (cursor !== "0");
      return undefined;
    },
    keyBytes,
    async quiesce(quietMs = 300, slack = 3, boundMs = 30_000) {
      const until = Date.now() + boundMs;
      let last = totalCalls(await commandStats());
      while (Date.now() < until) {
        await delay(quietMs);
        const now = totalCalls(await commandStats());
        if (now - last < slack) return;
        last = now;
      }
      throw new Error(`Redis still busy after ${boundMs} ms`);
    },
    async close() {
      await client.quit().catch(() => client.disconnect());
    },
  };
}
