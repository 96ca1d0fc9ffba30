import type { TraceFields } from "../../lib/tracing/trace-context.js";
import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";

/** What any instance needs to finish an exchange it did not start (README, "Running several instances"). */
export interface CorrelationEntry {
  owner: string;
  deviceId: string;
  jid: string;
  deadline: number;
  /**
   * The exchange's span (W3C fields), only when its instance traces: an instance the reply reaches instead
   * of the owner records its forwarding as a child of it (README, "Tracing").
   */
  trace?: TraceFields;
}

/**
 * The exchange's id in `{prefix}exchanges:{jid}`, a sorted set scored by deadline that says which senders may
 * have a reply on its way (StreamRoutes parks early chunks only for those). The set lives as long as its
 * latest deadline. KEYS: the set. ARGV: ttl, deadline, id.
 */
const ADD_TO_JID = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1`;

/**
 * `{prefix}corr:{id}` entries: written before the IQ leaves, expiring by themselves at the deadline.
 *
 * The entry is tagged by its exchange id (spread evenly over a cluster), the JID's set by the JID, so they
 * are two hash slots and a put or remove is two steps, each on one slot. A put writes the entry first
 * (SET NX: the id collision check), then adds the id to the JID's set; an instance that dies in between
 * never sent its IQ, and leaves an entry that nobody answers and that expires at its deadline. The set
 * grants nothing but the parking of early chunks, so an entry without its set member only means its
 * reply's chunks could not be parked (they cannot come: the IQ was never sent), and a member without its
 * entry (a remove cut short) lets that JID park a little longer, within the same bounds, until the deadline.
 * Whom a reply may come from is the entry's `jid` alone (the reply's `from` is checked against it). On a
 * single Redis (one connection, commands in order) the entry is always written first.
 */
export class CorrelationStore {
  /** (JID key, ttl, deadline, id) → 1. */
  private readonly addToJid: (...args: Array<string | number>) => Promise<number>;

  constructor(private readonly redis: RedisStore) {
    this.addToJid = redis.script<number>("addCorrelationToJid", 1, ADD_TO_JID);
  }

  /**
   * Both steps are sent at once (auto-pipelined: one write, one round trip on the hot path); each state
   * between or after them is one of those above. A collision (never in practice) leaves an extra set member.
   */
  async put(id: string, entry: CorrelationEntry, ttlMs: number): Promise<void> {
    const ttl = Math.max(1, ttlMs);
    const [written] = await Promise.all([
      this.redis.run((c) => c.set(this.redis.keys.exchange(id), JSON.stringify(entry), "PX", ttl, "NX")),
      this.addToJid(this.redis.keys.exchangesTo(entry.jid), ttl, entry.deadline, id),
    ]);
    // 96 random bits make a collision practically impossible; if one happens, refuse rather than share an id.
    if (written !== "OK") throw new GatewayError("GW_INTERNAL", { message: "correlation id collision" });
  }

  /**
   * Whether a write issued now goes out on a connected Redis connection, ahead of any command issued after it
   * (with Redis away, it fails at once: the client keeps no offline queue).
   */
  get connected(): boolean {
    return this.redis.ready;
  }

  async get(id: string): Promise<CorrelationEntry | undefined> {
    const raw = await this.redis.run((c) => c.get(this.redis.keys.exchange(id)));
    return raw ? (JSON.parse(raw) as CorrelationEntry) : undefined;
  }

  /** The entry first, then the set member; sent together (auto-pipelined, one write). */
  async remove(id: string, jid: string): Promise<void> {
    await this.redis.run((c) => Promise.all([c.del(this.redis.keys.exchange(id)), c.zrem(this.redis.keys.exchangesTo(jid), id)]));
  }
}
