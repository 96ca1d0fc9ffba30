import { normalizeJid } from "../../lib/xmpp/jid.js";
import type { RedisStore } from "../redis/client.js";

/** What the gateway knows of a device's presence: online, known offline, or nothing (try and see). */
export type PresenceState = "online" | "offline" | "unknown";

/**
 * Devices' presence, shared by all instances and surviving their restarts. Online devices are members of a
 * sorted set, `{prefix}online:{n}` (the JID's bucket of RedisKeys.online), scored by when their presence
 * expires: an agent re-announces itself periodically, so a device that vanished without a word (power cut,
 * lost NAT mapping) ages out. A device that said goodbye (`unavailable`) is remembered as offline for a
 * while, so requests to it fail at once.
 *
 * The bucket and the JID's own keys (`seen`, `offline`, tagged by JID) are in different hash slots, so a
 * change is two steps: a MULTI on the JID's keys, and the bucket. The bucket is written so that an
 * instance dying between the steps never leaves "online" wrong in the dangerous direction: `available`
 * adds to the bucket first (online wins over a stale offline mark in state()), `unavailable` removes from
 * it first (the device is then "unknown" until the offline mark follows, and requests to it are tried).
 * Either way the next presence of the device sets everything right.
 */
export class PresenceStore {
  constructor(
    private readonly redis: RedisStore,
    private readonly ttl: { onlineTtlMs: number; offlineTtlMs: number },
  ) {}

  async available(jid: string, now = Date.now()): Promise<void> {
    const j = normalizeJid(jid);
    await this.redis.run((c) => c.zadd(this.redis.keys.online(j), now + this.ttl.onlineTtlMs, j));
    await this.redis.run((c) => c.multi().del(this.offlineKey(j)).set(this.seenKey(j), String(now), "PX", this.ttl.offlineTtlMs).exec());
  }

  async unavailable(jid: string, now = Date.now()): Promise<void> {
    const j = normalizeJid(jid);
    await this.redis.run((c) => c.zrem(this.redis.keys.online(j), j));
    await this.redis.run((c) =>
      c
        .multi()
        .set(this.offlineKey(j), String(now), "PX", this.ttl.offlineTtlMs)
        .set(this.seenKey(j), String(now), "PX", this.ttl.offlineTtlMs)
        .exec(),
    );
  }

  /**
   * Whether the device announced itself (or said goodbye) within GATEWAY_OFFLINE_TTL_S: the offline queue
   * keeps requests only for devices that exist (registered, or seen), else any made-up id would fill it.
   */
  async everSeen(jid: string): Promise<boolean> {
    return (await this.redis.run((c) => c.exists(this.seenKey(normalizeJid(jid))))) === 1;
  }

  /** Two single-key reads sent together (a read needs no atomicity: either order of changes answers a state the device was in). */
  async state(jid: string, now = Date.now()): Promise<PresenceState> {
    const j = normalizeJid(jid);
    const [score, offline] = await this.redis.run((c) =>
      Promise.all([c.zscore(this.redis.keys.online(j), j), c.exists(this.offlineKey(j))]),
    );
    if (score !== null && Number(score) > now) return "online";
    return offline === 1 ? "offline" : "unknown";
  }

  /** Devices online now, all buckets; also forgets the expired ones, so the sets stay the size of the live fleet. */
  async countOnline(now = Date.now()): Promise<number> {
    const counts = await this.redis.run((c) =>
      Promise.all(
        this.redis.keys
          .onlineBuckets()
          .map((bucket) => Promise.all([c.zremrangebyscore(bucket, "-inf", now), c.zcard(bucket)]).then(([, n]) => n)),
      ),
    );
    return counts.reduce((sum, n) => sum + n, 0);
  }

  private seenKey(normalizedJid: string): string {
    return this.redis.keys.seen(normalizedJid);
  }

  private offlineKey(normalizedJid: string): string {
    return this.redis.keys.offline(normalizedJid);
  }
}
