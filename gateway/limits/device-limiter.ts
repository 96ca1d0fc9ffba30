import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";
import type { ScriptItem } from "../redis/slots.js";

/**
 * A device's requests in flight, counted across all instances (README "Errors", GW_DEVICE_BUSY): small
 * devices answer one request at a time, and a burst must not pile up on a slow one. Each request holds a
 * slot in `{prefix}inflight:{deviceId}`, a sorted set scored by the slot's deadline; slots of requests
 * whose instance died are reclaimed when their deadline passes, so a crash cannot leak capacity forever.
 *
 * Time is Redis's own (TIME), as for the client rate limit: the instances' clocks differ, and a slot scored
 * by a clock running ahead would be reclaimed early by the others. (Redis 5+ replicates a script's
 * effects, not the script, so TIME is allowed before writes.) The set expires with its latest slot, never
 * earlier: PEXPIREAT to the highest score, so a short request (X-Gateway-Timeout: 1) arriving after a long
 * one cannot make the whole set, the long request's slot with it, vanish early. (`PEXPIREAT … GT`, Redis
 * 7, alone would not do: a new set has no expiry, which GT treats as infinite and so never sets.)
 *
 * KEYS: the set. ARGV: max in flight, slot lifetime (ms), slot id.
 * Answers {1, slots in use with this one} when taken, {0, ms until the earliest slot's deadline} when full.
 */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, math.max(0, tonumber(first[2]) - now)}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return {1, redis.call('ZCARD', KEYS[1])}`;

/**
 * Gives slots back and tells the instances that wait for one (SlotNotices), each in one step. The channel
 * is declared as a key: in a Redis Cluster the notice goes by sharded pub/sub (SPUBLISH), which a script
 * may only do on a channel of its own slot (the channel carries the set's hash tag, keys.ts).
 * KEYS: the set and the channel of each slot, one slot after another. ARGV: PUBLISH or SPUBLISH, the
 * releasing instance, then the slots' ids in the same order.
 */
const RELEASE = `
for i = 3, #ARGV do
  local set = 2 * (i - 2) - 1
  if redis.call('ZREM', KEYS[set], ARGV[i]) == 1 then redis.call(ARGV[1], KEYS[set + 1], ARGV[2]) end
end
return 0`;

/**
 * Gives slots a new lifetime, from Redis's now, while their device has a slot free (SlotReuse renews the
 * slots it keeps lending: README, "Device requests"). A slot that is gone (given back, or reclaimed past its
 * deadline) is not brought back (ZADD XX), and a device with every slot taken renews none: an instance
 * waiting for one then gets the slot when its window ends, as without renewals. The set expires with its
 * latest slot, as in ACQUIRE.
 * KEYS: each slot's set. ARGV: each slot's id, lifetime (ms) and device maxInFlight, one slot after another.
 * Answers the positions (1-based) of the slots not renewed.
 */
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local refused = {}
for i = 1, #KEYS do
  local id, lifetime, max = ARGV[3 * i - 2], tonumber(ARGV[3 * i - 1]), tonumber(ARGV[3 * i])
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZSCORE', KEYS[i], id) and redis.call('ZCARD', KEYS[i]) < max then
    redis.call('ZADD', KEYS[i], 'XX', now + lifetime, id)
    local last = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[i], last[2])
  else
    refused[#refused + 1] = i
  end
end
return refused`;

/** Slots are kept this much longer than their request's deadline: the answer may still be on its way. */
export const SLOT_GRACE_MS = 1000;

/** A slot's lifetime in its set, as ACQUIRE and RENEW score it: what it is taken for, and the grace. */
const scoredLifetime = (ms: number): number => Math.max(1, Math.ceil(ms)) + SLOT_GRACE_MS;

/**
 * A slot taken, with `inUse`: the device's slots in use across all instances just after the take, this one
 * included (when the source knows it); or none free, and how long until the earliest slot's deadline.
 */
export type SlotAttempt =
  { taken: true; release: () => void; inUse: number | undefined; renewable?: SlotRef } | { taken: false; retryInMs: number };

/** A slot in Redis, as a renewal names it: its device, and its member in the device's set. */
export interface SlotRef {
  deviceId: string;
  id: string;
}

/** A slot to renew: for `lifetimeMs` from Redis's now, if its device (at `maxInFlight`) has a slot free. */
export interface Renewal {
  slot: SlotRef;
  lifetimeMs: number;
  maxInFlight: number;
}

/**
 * What DeviceQueue asks of the slots: DeviceLimiter's attempts, or SlotReuse in front of them, which can also
 * lend a slot it holds at once (`lendNow`: undefined when it has none to lend).
 */
export type SlotSource = Pick<DeviceLimiter, "tryAcquire" | "channel" | "busy"> & {
  lendNow?(deviceId: string, maxInFlight: number, timeoutMs: number, onReleased?: () => void): SlotAttempt | undefined;
};

/** What SlotReuse asks of the slots in Redis: a SlotSource that says when what it gave back is sent, and renews. */
export type RedisSlotSource = SlotSource & Pick<DeviceLimiter, "afterReleases" | "renew">;

/** A slot taken: `giveBack` runs at the first release only (a request's every way out releases it). */
export function takenSlot(giveBack: () => void, inUse?: number, renewable?: SlotRef): SlotAttempt {
  let released = false;
  return {
    taken: true,
    release: () => {
      if (released) return;
      released = true;
      giveBack();
    },
    inUse,
    ...(renewable ? { renewable } : {}),
  };
}

export class DeviceLimiter {
  private readonly acquireSlot: (...args: Array<string | number>) => Promise<[number, number]>;
  private readonly releaseSlots: (items: readonly ScriptItem[], shared: ReadonlyArray<string | number>) => Promise<number[]>;
  private readonly renewSlots: (items: readonly ScriptItem[], shared: ReadonlyArray<string | number>) => Promise<number[]>;
  private slots = 0;
  /** Slots given back in this tick, sent together at its end (flushReleases), and their wake-ups. */
  private releases: ScriptItem[] = [];
  private wakeUps: Array<() => void> = [];

  constructor(
    private readonly redis: RedisStore,
    private readonly slot: { instanceId: string; retryAfterS: number },
  ) {
    this.acquireSlot = redis.script<[number, number]>("acquireSlot", 1, ACQUIRE);
    this.releaseSlots = redis.batchScript("releaseSlot", 2, RELEASE);
    this.renewSlots = redis.batchScript("renewSlot", 1, RENEW);
  }

  /** The pub/sub channel on which a freed slot of this device is announced. */
  channel(deviceId: string): string {
    return this.redis.keys.slotFreed(deviceId);
  }

  /**
   * One attempt: a slot held for `timeoutMs` (plus grace), or how long until the earliest slot's deadline
   * (when a slot whose instance died is reclaimed at the latest). `onReleased` runs once the slot is given
   * back, after the command is sent, at the end of the tick of the release (commands on the one connection
   * run in order, so an attempt sent after it sees the slot free).
   */
  async tryAcquire(deviceId: string, maxInFlight: number, timeoutMs: number, onReleased?: () => void): Promise<SlotAttempt> {
    const key = this.redis.keys.deviceSlots(deviceId);
    const id = `${this.slot.instanceId}:${++this.slots}`;
    // The second answer is the slots in use when taken, else the wait until the earliest slot's deadline.
    const [taken, inUseOrWaitMs] = await this.acquireSlot(key, maxInFlight, scoredLifetime(timeoutMs), id);
    if (taken !== 1) return { taken: false, retryInMs: inUseOrWaitMs };
    return takenSlot(() => this.release({ keys: [key, this.channel(deviceId)], args: [id] }, onReleased), inUseOrWaitMs, { deviceId, id });
  }

  /**
   * Renews slots in one command (RENEW; on a Cluster, one each in one auto-pipeline); resolves with the
   * indexes in `renewals` of those not renewed. `lifetimeMs` is counted as a take counts it: the grace is added.
   */
  renew(renewals: readonly Renewal[]): Promise<number[]> {
    return this.renewSlots(
      renewals.map(({ slot, lifetimeMs, maxInFlight }) => ({
        keys: [this.redis.keys.deviceSlots(slot.deviceId)],
        args: [slot.id, scoredLifetime(lifetimeMs), maxInFlight],
      })),
      [],
    );
  }

  /**
   * A slot given back: sent with the others given back in this tick, in one command rather than one each
   * (on a Cluster, one each in one auto-pipeline: RedisStore.batchScript). Answers to many requests are
   * handled in one tick (one read of the XMPP stream), and under such a burst each command's objects
   * outlive young-generation collections and are kept until the next full one (docs/benchmark.md, "Soak").
   */
  private release(item: ScriptItem, onReleased: (() => void) | undefined): void {
    if (this.releases.length === 0) process.nextTick(() => this.flushReleases());
    this.releases.push(item);
    if (onReleased) this.wakeUps.push(onReleased);
  }

  /**
   * Runs `wakeUp` once the slots given back so far in this tick are sent (at once when none wait): for one
   * who gave a slot back without an `onReleased` of its own, such as SlotReuse, whose slot changes holder.
   */
  afterReleases(wakeUp: () => void): void {
    if (this.releases.length === 0) wakeUp();
    else this.wakeUps.push(wakeUp);
  }

  private flushReleases(): void {
    const releases = this.releases;
    const wakeUps = this.wakeUps;
    this.releases = [];
    this.wakeUps = [];
    // Sent, not awaited: a slot not given back expires at its deadline.
    this.releaseSlots(releases, [this.redis.publishCommand, this.slot.instanceId]).catch(ignore);
    for (const wakeUp of wakeUps) wakeUp();
  }

  /** 429 GW_DEVICE_BUSY with the configured Retry-After. */
  busy(message: string): GatewayError {
    return new GatewayError("GW_DEVICE_BUSY", { message, retryAfterS: this.slot.retryAfterS });
  }
}

const ignore = (): undefined => undefined;
