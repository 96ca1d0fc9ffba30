import { normalizeJid } from "../../lib/xmpp/jid.js";
import type { RedisStore } from "../redis/client.js";

/** What the gateway knows of a device's presence: online, known offline, or nothing (try and see). */
export type PresenceState = "online" | "offline" | "unknown";

/**
 * Devices' presence, shared by all instances and surviving their restarts. Online devices are members of
 * the sorted set `{prefix}online`, scored by when their presence expires: an agent re-announces itself
 * periodically, so a device that vanished without a word (power cut, lost NAT mapping) ages out. A device
 * that said goodbye (`unavailable`) is remembered as offline for a while, so requests to it fail at once.
 */
const STATE = `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) > tonumber(ARGV[2]) then return 1 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
return -1`;

export class PresenceStore {
  /** (online key, offline key, jid, now) → 1 online, 0 offline, -1 unknown. */
  private readonly presenceState: (...args: Array<string | number>) => Promise<number>;
  private readonly onlineKey: string;

  constructor(
    private readonly redis: RedisStore,
    private readonly ttl: { onlineTtlMs: number; offlineTtlMs: number },
  ) {
    this.presenceState = redis.script<number>("presenceState", 2, STATE);
    this.onlineKey = redis.keys.online();
  }

  async available(jid: string, now = Date.now()): Promise<void> {
    const j = normalizeJid(jid);
    await this.redis.run((c) =>
      c
        .multi()
        .zadd(this.onlineKey, now + this.ttl.onlineTtlMs, j)
        .del(this.offlineKey(j))
        .set(this.seenKey(j), String(now), "PX", this.ttl.offlineTtlMs)
        .exec(),
    );
  }

  async unavailable(jid: string, now = Date.now()): Promise<void> {
    const j = normalizeJid(jid);
    await this.redis.run((c) =>
      c
        .multi()
        .zrem(this.onlineKey, j)
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

  async state(jid: string, now = Date.now()): Promise<PresenceState> {
    const r = await this.presenceState(this.onlineKey, this.offlineKey(normalizeJid(jid)), normalizeJid(jid), now);
    return r === 1 ? "online" : r === 0 ? "offline" : "unknown";
  }

  /** Devices online now; also forgets the expired ones, so the set stays the size of the live fleet. */
  async countOnline(now = Date.now()): Promise<number> {
    const [, count] = await this.redis.run((c) => Promise.all([c.zremrangebyscore(this.onlineKey, "-inf", now), c.zcard(this.onlineKey)]));
    return count;
  }

  private seenKey(normalizedJid: string): string {
    return this.redis.keys.seen(normalizedJid);
  }

  private offlineKey(normalizedJid: string): string {
    return this.redis.keys.offline(normalizedJid);
  }
}
