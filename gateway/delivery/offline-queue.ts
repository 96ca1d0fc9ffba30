import type { HttpRequestMessage } from "../../lib/xep0332/message.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { RedisStore } from "../redis/client.js";

/** One asynchronous request waiting for its device. */
export interface QueuedRequest {
  id: string;
  deviceId: string;
  deadline: number;
  idempotencyKey?: string;
  message: { method: HttpRequestMessage["method"]; resource: string; headers: Array<[string, string]>; body: string };
}

export function toQueued(id: string, deviceId: string, deadline: number, msg: HttpRequestMessage, idempotencyKey?: string): QueuedRequest {
  return {
    id,
    deviceId,
    deadline,
    ...(idempotencyKey ? { idempotencyKey } : {}),
    message: {
      method: msg.method,
      resource: msg.resource,
      headers: msg.headers.map(([n, v]) => [n, v]),
      body: msg.body.toString("base64"),
    },
  };
}

export function messageOf(q: QueuedRequest): HttpRequestMessage {
  return {
    method: q.message.method,
    resource: q.message.resource,
    headers: q.message.headers,
    body: Buffer.from(q.message.body, "base64"),
  };
}

/**
 * The queue's bounds (README, "Offline queue"): entries and bytes per device, and in all (every device,
 * every instance). Bytes are those Redis holds: the queued entry's JSON, body in base64.
 */
export interface QueueLimits {
  maxPerDevice: number;
  maxBytesPerDevice: number;
  maxTotal: number;
  maxTotalBytes: number;
}

/**
 * The queue's global bound, a step of its own: the per-device lists are tagged by JID (one hash slot each,
 * spread over a cluster), the two totals share a tag of their own, and a script may touch one slot only.
 * KEYS (global): the set of all places taken (`<id>:<bytes>` scored by deadline), the total byte count.
 *
 * RESERVE takes a place within the global bounds. ARGV: member, bytes, deadline, now, max entries, max bytes.
 * The totals correct themselves: places past their deadline leave the set (and their bytes the count) at
 * the next reservation, whether their entry expired unseen with its list, or an instance that died between
 * two steps left the place behind (below); an empty set resets the count.
 * Answers 0 taken, 3 no entry left in all, 4 no byte left in all.
 */
const RESERVE = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[4], 'LIMIT', 0, 1000)
if #expired > 0 then
  local freed = 0
  for _, m in ipairs(expired) do freed = freed + (tonumber(string.match(m, ':(%d+)$')) or 0) end
  redis.call('ZREM', KEYS[1], unpack(expired))
  redis.call('DECRBY', KEYS[2], freed)
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) end
if ARGV[5] ~= '' then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[5]) then return 3 end
  if tonumber(redis.call('GET', KEYS[2]) or '0') + tonumber(ARGV[2]) > tonumber(ARGV[6]) then return 4 end
end
if redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1]) == 1 then redis.call('INCRBY', KEYS[2], ARGV[2]) end
return 0`;

/** Gives a place back (the entry was delivered, or its device refused it). ARGV: member, bytes. */
const RELEASE = `
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  if redis.call('DECRBY', KEYS[2], ARGV[2]) <= 0 then redis.call('DEL', KEYS[2]) end
end
return 0`;

/** Lua: pushes ARGV[1] onto the list and counts its bytes; both keys expire with their latest entry. */
function counted(push: "RPUSH" | "LPUSH"): string {
  return `redis.call('${push}', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], string.len(ARGV[1]))
for _, k in ipairs({KEYS[1], KEYS[2]}) do
  redis.call('PEXPIREAT', k, ARGV[2], 'GT')
  redis.call('PEXPIREAT', k, ARGV[2], 'NX')
end`;
}

/**
 * The device's step, within its bounds. KEYS (the JID's): the device's list, its byte count. ARGV: entry,
 * deadline, max entries, max bytes. Answers 0 queued, or which bound refused it: 1 entries, 2 bytes.
 */
const ENQUEUE = `
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 1 end
if tonumber(redis.call('GET', KEYS[2]) or '0') + string.len(ARGV[1]) > tonumber(ARGV[4]) then return 2 end
${counted("RPUSH")}
return 0`;

/**
 * An entry back at the head of its device's list, counted again, without a bound check (it had its place):
 * a delivery stopped by a shutdown before it was sent. KEYS as ENQUEUE's. ARGV: entry, deadline.
 */
const REQUEUE = `
${counted("LPUSH")}
return 0`;

/** The next entry of a device's list, its bytes taken off the device's count. KEYS as ENQUEUE's. */
const DEQUEUE = `
local raw = redis.call('LPOP', KEYS[1])
if not raw then
  redis.call('DEL', KEYS[2])
  return false
end
if redis.call('DECRBY', KEYS[2], string.len(raw)) <= 0 then redis.call('DEL', KEYS[2]) end
return raw`;

const BOUNDS = ["entries for this device", "bytes for this device", "entries in all", "bytes in all"] as const;

/**
 * Asynchronous requests for a device known to be offline wait in `{prefix}queue:{jid}` (a Redis list, so any
 * instance can take them) until the device announces itself; then one instance, holding a short lock,
 * delivers them in order. Requests past their deadline are expired instead of delivered. The queue is
 * bounded (QueueLimits): a request that does not fit is refused, never kept in memory instead.
 *
 * Each entry holds a place in the global bound (RESERVE) and sits in its device's list; those are two hash
 * slots, so two steps, ordered so that what a crash between them leaves is a place held without an entry,
 * never an entry without its place (which would let the queue grow past its global bound):
 * - enqueue reserves the place first, then pushes within the device's bounds, and gives the place back if
 *   the device's bounds refuse;
 * - a delivery pops the entry first, then gives its place back;
 * - a requeue (shutdown) takes the place again first (no bound check: it had it), then pushes.
 * A place left behind by a crash is freed at its entry's deadline by the next reservation.
 */
export class OfflineQueue {
  private readonly log: Logger;
  private readonly reserveScript: (...args: Array<string | number>) => Promise<number>;
  private readonly releaseScript: (...args: Array<string | number>) => Promise<number>;
  private readonly enqueueScript: (...args: Array<string | number>) => Promise<number>;
  private readonly dequeueScript: (...args: Array<string | number>) => Promise<string | null>;
  private readonly requeueScript: (...args: Array<string | number>) => Promise<number>;

  constructor(
    private readonly redis: RedisStore,
    logger: Logger,
    private readonly limits: QueueLimits,
    private readonly lockMs = 60_000,
  ) {
    this.log = logger.child({ component: "offline-queue" });
    this.reserveScript = redis.script<number>("reserveOffline", 2, RESERVE);
    this.releaseScript = redis.script<number>("releaseOffline", 2, RELEASE);
    this.enqueueScript = redis.script<number>("enqueueOffline", 2, ENQUEUE);
    this.dequeueScript = redis.script<string | null>("dequeueOffline", 2, DEQUEUE);
    this.requeueScript = redis.script<number>("requeueOffline", 2, REQUEUE);
  }

  /** Queues the request, or throws 503 GW_DEVICE_OFFLINE saying which bound it did not fit in. */
  async enqueue(jid: string, item: QueuedRequest, now = Date.now()): Promise<void> {
    const entry = JSON.stringify(item);
    const { maxPerDevice, maxBytesPerDevice, maxTotal, maxTotalBytes } = this.limits;
    const place = placeOf(item.id, entry);
    let r = await this.reserveScript(...this.totals(), place.member, place.bytes, item.deadline, now, maxTotal, maxTotalBytes);
    if (r === 0) {
      r = await this.enqueueScript(...this.deviceKeys(jid), entry, item.deadline, maxPerDevice, maxBytesPerDevice);
      if (r !== 0) await this.release(place);
    }
    if (r === 0) return;
    const bound = BOUNDS[r - 1] ?? "room";
    this.log.warn(
      { event: "queue-full", id: item.id, deviceId: item.deviceId, bound },
      "asynchronous request not queued: offline queue full",
    );
    throw new GatewayError("GW_DEVICE_OFFLINE", { message: `device is not connected, and the offline queue has no more room (${bound})` });
  }

  /**
   * Delivers what waits for this device, one at a time; does nothing if another instance is at it. A
   * delivery that answers "stop" (the instance is shutting down) puts its item back at the head of the
   * queue, in its place, and ends the drain: the device's next announcement lets another instance go on.
   */
  async drain(
    jid: string,
    deliver: (item: QueuedRequest) => Promise<void | "stop">,
    expire: (item: QueuedRequest) => Promise<void>,
  ): Promise<void> {
    const keys = this.deviceKeys(jid);
    const lock = this.redis.keys.offlineQueueDrain(jid);
    const owner = `${process.pid}-${Date.now()}`;
    const locked = await this.redis.run((c) => c.set(lock, owner, "PX", this.lockMs, "NX"));
    if (locked !== "OK") return;
    try {
      for (;;) {
        const raw = await this.dequeueScript(...keys);
        if (!raw) return;
        const item = JSON.parse(raw) as QueuedRequest;
        const place = placeOf(item.id, raw);
        await this.release(place);
        try {
          if (Date.now() > item.deadline) await expire(item);
          else if ((await deliver(item)) === "stop") {
            await this.reserveScript(...this.totals(), place.member, place.bytes, item.deadline, Date.now(), "", "");
            await this.requeueScript(...keys, raw, item.deadline);
            return;
          }
        } catch (err) {
          this.log.warn({ event: "queued-delivery-failed", id: item.id, err: (err as Error).message }, "queued request not delivered");
        }
        await this.redis.run((c) => c.pexpire(lock, this.lockMs));
      }
    } finally {
      await this.redis.run((c) => c.del(lock)).catch(() => undefined);
    }
  }

  private async release(place: Place): Promise<void> {
    await this.releaseScript(...this.totals(), place.member, place.bytes);
  }

  private deviceKeys(jid: string): [string, string] {
    return [this.redis.keys.offlineQueue(jid), this.redis.keys.offlineQueueBytes(jid)];
  }

  private totals(): [string, string] {
    return [this.redis.keys.offlineQueuedTotal(), this.redis.keys.offlineQueuedBytesTotal()];
  }
}

interface Place {
  /** `<id>:<bytes>`, the member of the set of places. */
  member: string;
  bytes: number;
}

/** Bytes as Redis counts them (string.len: UTF-8 bytes of the JSON). */
function placeOf(id: string, entry: string): Place {
  const bytes = Buffer.byteLength(entry);
  return { member: `${id}:${bytes}`, bytes };
}
