import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";

/** What any instance needs to finish an exchange it did not start (README, "Running several instances"). */
export interface CorrelationEntry {
  owner: string;
  deviceId: string;
  jid: string;
  deadline: number;
}

/**
 * The entry, and the exchange's id in `{prefix}exchanges:{jid}`, a sorted set scored by deadline that says
 * which senders may have a reply on its way (StreamRoutes parks early chunks only for those). The set lives
 * as long as its latest deadline.
 */
const PUT = `
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1`;

const REMOVE = `
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`;

/** `{prefix}corr:{id}` entries: written before the IQ leaves, expiring by themselves at the deadline. */
export class CorrelationStore {
  /** (entry key, JID key, entry, ttl, deadline, id) → 1 written, 0 the id exists. */
  private readonly putEntry: (...args: Array<string | number>) => Promise<number>;
  /** (entry key, JID key, id). */
  private readonly removeEntry: (...args: Array<string | number>) => Promise<number>;

  constructor(private readonly redis: RedisStore) {
    this.putEntry = redis.script<number>("putCorrelation", 2, PUT);
    this.removeEntry = redis.script<number>("removeCorrelation", 2, REMOVE);
  }

  async put(id: string, entry: CorrelationEntry, ttlMs: number): Promise<void> {
    const ttl = Math.max(1, ttlMs);
    const ok = await this.putEntry(
      this.redis.keys.exchange(id),
      this.redis.keys.exchangesTo(entry.jid),
      JSON.stringify(entry),
      ttl,
      entry.deadline,
      id,
    );
    // 96 random bits make a collision practically impossible; if one happens, refuse rather than share an id.
    if (ok !== 1) throw new GatewayError("GW_INTERNAL", { message: "correlation id collision" });
  }

  async get(id: string): Promise<CorrelationEntry | undefined> {
    const raw = await this.redis.run((c) => c.get(this.redis.keys.exchange(id)));
    return raw ? (JSON.parse(raw) as CorrelationEntry) : undefined;
  }

  async remove(id: string, jid: string): Promise<void> {
    await this.removeEntry(this.redis.keys.exchange(id), this.redis.keys.exchangesTo(jid), id);
  }
}
