import { performance } from "node:perf_hooks";
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
 * How long an entry is held on its instance before it is written, by default (GATEWAY_CORRELATION_HOLD_MS):
 * an exchange that ends within it (most do: a device answers in milliseconds) never reaches Redis at all,
 * neither its write nor its removal. Held entries are looked at every half hold, so an entry still needed
 * is written 50 to 75 ms after its IQ left: before the third lookup of a reply not found elsewhere
 * (lookAgainWaits: 25 ms, then 50 more).
 */
export const RECORD_HOLD_MS = 50;

/**
 * After a reply crossed between instances (it reached an instance that does not own its exchange, or came
 * to this one forwarded), entries are written at once, unheld, for this long (each crossing renews it):
 * replies spread over several connections (ejabberd) then find their entry at their first lookup.
 */
export const CROSSING_MEMORY_MS = 10 * 60_000;

/** An entry held on the instance (GATEWAY_CORRELATION_HOLD_MS), not written yet. */
interface HeldEntry {
  entry: CorrelationEntry;
  ttlMs: number;
  /** performance.now() when it was recorded. */
  recordedAt: number;
}

/**
 * `{prefix}corr:{jid}|<id>` entries: recorded as the IQ leaves (XmppExchanger), expiring by themselves at the
 * deadline. An entry and its JID's set are in the device's hash slot, so each write and removal is one
 * script: an instance that dies mid-write leaves both or neither. An instance that gets a reply it does not
 * own finds the entry from the reply's sender and id; a reply from any other sender (a spoof of the id)
 * finds nothing.
 *
 * An entry is needed only where a reply arrives that its instance does not own, and by a chunk arriving
 * before its stream is claimed (StreamRoutes parks it only for a sender with an exchange in flight). The
 * reply of a device comes back, nearly always, to the connection that sent the IQ, within milliseconds. So
 * an entry is held here for `holdMs` first, and an exchange that ends meanwhile is never written nor
 * removed: under load the writes and removals were most of the gateway's Redis work per XMPP request
 * (docs/benchmark.md). Held entries are written at once (`writeHeld`) when they may be needed sooner: the
 * component's connection closed (its replies will reach another instance, or none), a chunk is to be
 * routed through Redis, or replies crossed between instances lately (then every entry is written at once
 * for CROSSING_MEMORY_MS). What this moves (README, "Running several instances"): the first replies to
 * cross after a quiet spell find their entry up to 1.5 holds (75 ms) after their IQ left, at a later lookup.
 *
 * Nothing is sent one by one. The entries written in one pass of the event loop go together at its end,
 * in one command with the removals waiting: a command each cost the gateway more CPU than its writes and
 * removals together in one (ioredis builds a command, its promise and its timer per call). On a Cluster each
 * still goes as a command of its own (RedisStore.batchScript). Removals wait for the next write, or
 * REMOVAL_WAIT_MS when none comes: on a quiet instance each exchange's removal then shares the next
 * exchange's write to Redis instead of being a write of its own after the response (each write to a
 * process asleep on another core costs about 0.1 ms of CPU on a small VM).
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
  /** Entries held by exchange id, oldest first: a Map keeps its insertion order. */
  private readonly held = new Map<string, HeldEntry>();
  /** The next look for held entries due, while any is held. */
  private holdTimer: NodeJS.Timeout | undefined;
  /** performance.now() until which entries are written at once, unheld (CROSSING_MEMORY_MS). */
  private atOnceUntil = -Infinity;
  /** Records written to Redis, and records never written (their exchange ended while held): gateway_correlation_records_total. */
  readonly counts = { written: 0, unneeded: 0 };
  private readonly log: Logger;
  private readonly flushNow = (): void => {
    // Its failures are logged by flush() itself.
    void this.flush();
  };
  /** Writes the held entries that are due, and looks again later while some are held. */
  private readonly writeDue = (): void => {
    this.holdTimer = undefined;
    const now = performance.now();
    this.release(now - this.holdMs, now);
    if (this.held.size > 0) this.lookAgainForDue();
    if (this.changes.length > 0) this.flushNow();
  };

  /** `holdMs`: how long an entry is held before it is written (GATEWAY_CORRELATION_HOLD_MS); 0: not at all. */
  constructor(
    private readonly redis: RedisStore,
    logger: Logger,
    private readonly holdMs = RECORD_HOLD_MS,
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
   * Records exchange `id`'s entry without waiting for it: held for `holdMs` (never written if the
   * exchange ends by then), or, while replies cross between instances, written at the end of this pass with
   * the others of the pass and the removals waiting. A write that fails is logged, and the exchange goes on
   * (only another instance the reply reaches instead needs the entry).
   */
  record(id: string, entry: CorrelationEntry, ttlMs: number): void {
    const now = performance.now();
    if (this.holdMs === 0 || now < this.atOnceUntil) {
      this.changes.push(this.write(id, entry, ttlMs));
      this.flushDue ??= setImmediate(this.flushNow);
      return;
    }
    this.held.set(id, { entry, ttlMs, recordedAt: now });
    if (!this.holdTimer) this.lookAgainForDue();
  }

  /**
   * Sends every held entry now, ahead of any command issued after this call; `atOnceForMs`: and writes the
   * entries recorded within that long from now at once, unheld (a crossing: CROSSING_MEMORY_MS).
   */
  writeHeld(atOnceForMs = 0): void {
    if (atOnceForMs > 0) this.atOnceUntil = Math.max(this.atOnceUntil, performance.now() + atOnceForMs);
    if (this.held.size === 0) return;
    this.release(Infinity, performance.now());
    clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    this.flushNow();
  }

  /** Entries held now, not written yet. */
  get heldCount(): number {
    return this.held.size;
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
   * Removes the entry of exchange `id` with `jid`: a held one is dropped, never written; a written one goes with
   * the next write or within REMOVAL_WAIT_MS. Never fails: an entry not removed expires by itself at its
   * deadline.
   */
  remove(id: string, jid: string): void {
    // Held, so never written: nothing to remove.
    if (this.held.delete(id)) {
      this.counts.unneeded++;
      return;
    }
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

  private lookAgainForDue(): void {
    this.holdTimer = setTimeout(this.writeDue, this.holdMs / 2);
    // The instance may stop meanwhile: its component's connection closing writes what is held.
    this.holdTimer.unref();
  }

  /**
   * Queues the writes of the held entries recorded before `recordedBefore` (the oldest first, as held), each
   * expiring when it would have, had it been written as it was recorded.
   */
  private release(recordedBefore: number, now: number): void {
    for (const [id, held] of this.held) {
      if (held.recordedAt >= recordedBefore) break;
      this.held.delete(id);
      this.changes.push(this.write(id, held.entry, held.ttlMs - (now - held.recordedAt)));
    }
  }

  private write(id: string, entry: CorrelationEntry, ttlMs: number): ScriptItem {
    this.counts.written++;
    const { keys } = this.redis;
    return {
      keys: [keys.exchange(entry.jid, id), keys.exchangesTo(entry.jid)],
      args: ["p", id, JSON.stringify(entry), Math.max(1, Math.ceil(ttlMs)), entry.deadline],
    };
  }

  /** Logs a write that failed (a removal's failure is not: its entry expires by itself). */
  private notWritten(change: ScriptItem | undefined, err: string): void {
    if (change?.args[0] === "p") this.log.warn({ event: "record-not-written", id: change.args[1], err }, "correlation record not written");
  }
}
