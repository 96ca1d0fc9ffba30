import type { TraceFields } from "../../lib/tracing/trace-context.js";
import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";
import type { ScriptItem } from "../redis/slots.js";
import type { Logger } from "../log.js";

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
 * Writes and removes exchanges' entries, one item after another, in one command. Each item has two KEYS, the
 * entry and `{prefix}exchanges:{jid}` (one hash slot: the device's), and its ARGV start with what it is:
 * - `p`, id, entry, ttl, deadline: writes the entry, unless one has its id (SET NX), and adds the id to the
 *   JID's set, a sorted set scored by deadline that says which senders may have a reply on its way
 *   (StreamRoutes parks early chunks only for those), which lives as long as its latest deadline;
 * - `r`, id: removes the entry and the id from the set.
 * Answers the positions (1-based) of the writes refused because their id was taken.
 */
const APPLY = `
local a, refused = 1, {}
for i = 1, #KEYS / 2 do
  local entry, set = KEYS[2 * i - 1], KEYS[2 * i]
  if ARGV[a] == 'p' then
    if redis.call('SET', entry, ARGV[a + 2], 'PX', ARGV[a + 3], 'NX') then
      redis.call('ZADD', set, ARGV[a + 4], ARGV[a + 1])
      if redis.call('PTTL', set) < tonumber(ARGV[a + 3]) then redis.call('PEXPIRE', set, ARGV[a + 3]) end
    else
      refused[#refused + 1] = i
    end
    a = a + 5
  else
    redis.call('DEL', entry)
    redis.call('ZREM', set, ARGV[a + 1])
    a = a + 2
  end
end
return refused`;

/**
 * How long a removal may wait for a write to ride along with. An entry outlives its exchange by at most
 * this: a late reply reaching another instance meanwhile is forwarded to the owner, which drops it as it
 * drops any reply after the end (ReplyRouter); a chunk from the device may be parked for this long more.
 */
export const REMOVAL_WAIT_MS = 50;

/**
 * `{prefix}corr:{jid}|<id>` entries: written as the IQ leaves (XmppExchanger), expiring by themselves at the
 * deadline. An entry and its JID's set are in the device's hash slot, so each write and removal is one
 * script: an instance that dies mid-write leaves both or neither. An instance that gets a reply it does not
 * own finds the entry from the reply's sender and id; a reply from any other sender (a spoof of the id)
 * finds nothing.
 *
 * Nothing is sent one by one. The entries written in one pass of the event loop go together at its end
 * (`record`), in one command with the removals waiting: under load every request writes one, and a command
 * each cost the gateway more CPU than its writes and removals together in one (ioredis builds a command,
 * its promise and its timer per call; docs/benchmark.md). On a Cluster each still goes as a command of its
 * own (RedisStore.batchScript). Removals wait for the next write, or REMOVAL_WAIT_MS when none comes: on a
 * quiet instance each exchange's removal then shares the next exchange's write to Redis instead of being a
 * write of its own after the response (each write to a process asleep on another core costs about 0.1 ms of
 * CPU on a small VM).
 */
export class CorrelationStore {
  private readonly apply: (items: readonly ScriptItem[], shared: []) => Promise<number[]>;
  /** What waits to be sent, in the order asked: a removal never goes ahead of its entry's write. */
  private changes: ScriptItem[] = [];
  /** The positions in `changes` of writes a put() waits for: their failures are the caller's, not logged. */
  private awaited: number[] = [];
  /** The flush at the end of this pass, once a write waits. */
  private flushDue: NodeJS.Immediate | undefined;
  /** The flush within REMOVAL_WAIT_MS, while only removals wait. */
  private removalTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly flushNow = (): void => {
    // Its failures are logged by flush() itself.
    void this.flush();
  };

  constructor(
    private readonly redis: RedisStore,
    logger: Logger,
  ) {
    this.apply = redis.batchScript("applyCorrelation", 2, APPLY);
    this.log = logger.child({ component: "correlation" });
  }

  /**
   * Writes exchange `id`'s entry now, with whatever waits; fails as GW_STORE_UNAVAILABLE when Redis does not
   * take it, and GW_INTERNAL when its id is taken.
   */
  async put(id: string, entry: CorrelationEntry, ttlMs: number): Promise<void> {
    const at = this.changes.length;
    this.changes.push(this.write(id, entry, ttlMs));
    this.awaited.push(at);
    const refused = await this.flush();
    // 96 random bits make a collision practically impossible; if one happens, refuse rather than share an id.
    if (refused.includes(at)) throw new GatewayError("GW_INTERNAL", { message: "correlation id collision" });
  }

  /**
   * Writes exchange `id`'s entry at the end of this pass, with the others of the pass and the removals
   * waiting, without waiting for it: a write that fails is logged, and the exchange goes on (only another
   * instance the reply reaches instead needs the entry).
   */
  record(id: string, entry: CorrelationEntry, ttlMs: number): void {
    this.changes.push(this.write(id, entry, ttlMs));
    this.flushDue ??= setImmediate(this.flushNow);
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
   * Removes the entry of exchange `id` with `jid`, with the next write or within REMOVAL_WAIT_MS. Never fails:
   * an entry not removed expires by itself at its deadline.
   */
  remove(id: string, jid: string): void {
    const { keys } = this.redis;
    this.changes.push({ keys: [keys.exchange(jid, id), keys.exchangesTo(jid)], args: ["r", id] });
    if (!this.flushDue && !this.removalTimer) {
      this.removalTimer = setTimeout(this.flushNow, REMOVAL_WAIT_MS);
      // The instance may stop meanwhile: stop() flushes what waits.
      this.removalTimer.unref();
    }
  }

  /**
   * Sends what waits, now, as one command (on a Cluster one each: batchScript), in the write to Redis of
   * whatever else this pass sends. One command for them all rather than one each: when thousands of
   * requests are answered at once, each command's objects live until Redis answers, long enough under such
   * a burst to outlast a young-generation collection and be kept until the next full one (docs/benchmark.md,
   * "Soak"). Resolves with the positions of the writes refused (their id taken).
   */
  flush(): Promise<number[]> {
    clearImmediate(this.flushDue);
    clearTimeout(this.removalTimer);
    this.flushDue = undefined;
    this.removalTimer = undefined;
    if (this.changes.length === 0) return Promise.resolve([]);
    const { changes, awaited } = this;
    this.changes = [];
    if (awaited.length > 0) this.awaited = [];
    const sent = this.apply(changes, []);
    sent.then(
      (refused) => {
        for (const at of refused) if (!awaited.includes(at)) this.notWritten(changes[at], "correlation id collision");
      },
      (err: unknown) => {
        changes.forEach((change, at) => {
          if (!awaited.includes(at)) this.notWritten(change, (err as Error).message);
        });
      },
    );
    return sent;
  }

  private write(id: string, entry: CorrelationEntry, ttlMs: number): ScriptItem {
    const { keys } = this.redis;
    return {
      keys: [keys.exchange(entry.jid, id), keys.exchangesTo(entry.jid)],
      args: ["p", id, JSON.stringify(entry), Math.max(1, ttlMs), entry.deadline],
    };
  }

  /** Logs a write that failed (a removal's failure is not: its entry expires by itself). */
  private notWritten(change: ScriptItem | undefined, err: string): void {
    if (change?.args[0] === "p") this.log.warn({ event: "record-not-written", id: change.args[1], err }, "correlation record not written");
  }
}
