import type { TraceFields } from "../../lib/tracing/trace-context.js";
import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";
import type { ScriptItem } from "../redis/slots.js";

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
 * Writes an exchange's entry, unless one has its id (SET NX), and adds the id to `{prefix}exchanges:{jid}`, a
 * sorted set scored by deadline that says which senders may have a reply on its way (StreamRoutes parks early
 * chunks only for those), which lives as long as its latest deadline. KEYS: the entry, the set (one hash slot:
 * the device's). ARGV: the entry, ttl, deadline, id. Answers 1 written, 0 when the id was taken.
 */
const PUT = `
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1`;

/**
 * Removes exchanges' entries and their ids from their JIDs' sets. KEYS: PUT's two for each exchange, one
 * exchange after another. ARGV: their ids, in the same order.
 */
const REMOVE = `
for i = 1, #ARGV do
  redis.call('DEL', KEYS[2 * i - 1])
  redis.call('ZREM', KEYS[2 * i], ARGV[i])
end
return 1`;

/**
 * How long an exchange's removal may wait for a write to ride along with. An entry outlives its exchange by
 * at most this: a late reply reaching another instance meanwhile is forwarded to the owner, which drops it
 * as it drops any reply after the end (ReplyRouter); a chunk from the device may be parked for this long more.
 */
export const REMOVAL_WAIT_MS = 50;

/**
 * `{prefix}corr:{jid}|<id>` entries: written as the IQ leaves (XmppExchanger), expiring by themselves at the
 * deadline. An entry and its JID's set are in the device's hash slot, so each put and remove is one script,
 * one command: an instance that dies mid-write leaves both or neither. An instance that gets a reply it does
 * not own finds the entry from the reply's sender and id; a reply from any other sender (a spoof of the id)
 * finds nothing.
 *
 * Removals are not sent at once: they go with the next put, or after REMOVAL_WAIT_MS when none comes. On a
 * quiet instance each exchange's removal then shares the next exchange's write to Redis instead of being a
 * write of its own after the response (each write to a process asleep on another core costs about 0.1 ms of
 * CPU on a small VM, docs/benchmark.md); under load every pass writes anyway, and the removals join it.
 */
export class CorrelationStore {
  /** (entry key, JID key, entry, ttl, deadline, id) → 1 written, 0 id taken. */
  private readonly putScript: (...args: Array<string | number>) => Promise<number>;
  /** Each item: (entry key, JID key), id. */
  private readonly removeScript: (items: readonly ScriptItem[], shared: []) => Promise<void>;
  /** Removals waiting for the next put. */
  private removals: ScriptItem[] = [];
  private removalTimer: NodeJS.Timeout | undefined;

  constructor(private readonly redis: RedisStore) {
    this.putScript = redis.script<number>("putCorrelation", 2, PUT);
    this.removeScript = redis.batchScript("removeCorrelation", 2, REMOVE);
  }

  async put(id: string, entry: CorrelationEntry, ttlMs: number): Promise<void> {
    this.flushRemovals();
    const ttl = Math.max(1, ttlMs);
    const { keys } = this.redis;
    const written = await this.putScript(
      keys.exchange(entry.jid, id),
      keys.exchangesTo(entry.jid),
      JSON.stringify(entry),
      ttl,
      entry.deadline,
      id,
    );
    // 96 random bits make a collision practically impossible; if one happens, refuse rather than share an id.
    if (written !== 1) throw new GatewayError("GW_INTERNAL", { message: "correlation id collision" });
  }

  /**
   * Whether a write issued now goes out on a connected Redis connection, ahead of any command issued after it
   * (with Redis away, it fails at once: the client keeps no offline queue).
   */
  get connected(): boolean {
    return this.redis.ready;
  }

  /** The entry of exchange `id` with `jid` (a reply's sender). */
  async get(jid: string, id: string): Promise<CorrelationEntry | undefined> {
    const raw = await this.redis.run((c) => c.get(this.redis.keys.exchange(jid, id)));
    return raw ? (JSON.parse(raw) as CorrelationEntry) : undefined;
  }

  /**
   * Removes the entry of exchange `id` with `jid`, with the next put or within REMOVAL_WAIT_MS. Never fails:
   * an entry not removed expires by itself at its deadline.
   */
  remove(id: string, jid: string): void {
    const { keys } = this.redis;
    this.removals.push({ keys: [keys.exchange(jid, id), keys.exchangesTo(jid)], arg: id });
    if (!this.removalTimer) {
      this.removalTimer = setTimeout(() => this.flushRemovals(), REMOVAL_WAIT_MS);
      // The instance may stop meanwhile: stop() flushes what waits.
      this.removalTimer.unref();
    }
  }

  /**
   * Sends the removals waiting, in this tick, as one command (on a Cluster one each: batchScript), in the
   * write to Redis of whatever else this pass sends. One command for them all rather than one each:
   * when thousands of requests are answered at once, each command's objects live until Redis answers, long
   * enough under such a burst to outlast a young-generation collection and be kept until the next full one
   * (docs/benchmark.md, "Soak").
   */
  flushRemovals(): void {
    if (this.removals.length === 0) return;
    clearTimeout(this.removalTimer);
    this.removalTimer = undefined;
    const removals = this.removals;
    this.removals = [];
    this.removeScript(removals, []).catch(ignore);
  }
}

const ignore = (): undefined => undefined;
