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

/** Lua: pushes ARGV[1] (of `size` bytes) onto the list and counts it; both keys expire with their latest entry. */
function counted(push: "RPUSH" | "LPUSH"): string {
  return `redis.call('${push}', KEYS[1], ARGV[1])
redis.call('INCRBY', KEYS[2], size)
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[${push === "RPUSH" ? 4 : 3}])
redis.call('INCRBY', KEYS[4], size)
for _, k in ipairs({KEYS[1], KEYS[2]}) do
  redis.call('PEXPIREAT', k, ARGV[2], 'GT')
  redis.call('PEXPIREAT', k, ARGV[2], 'NX')
end`;
}

/**
 * Enqueue, within bounds, in one step (no two instances can both take the last place).
 * KEYS: the device's list, its byte count, the set of all queued entries (`{id}:{bytes}` scored by
 * deadline), the total byte count. ARGV: entry, deadline, now, member, then the four limits.
 * The totals correct themselves: entries past their deadline leave the set (and their bytes the count) at
 * the next enqueue, whether they were drained or expired with their list; an empty set resets the count.
 * Answers 0 queued, or which bound refused it: 1 device entries, 2 device bytes, 3 entries, 4 bytes.
 */
const ENQUEUE = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[3], 'LIMIT', 0, 1000)
if #expired > 0 then
  local freed = 0
  for _, m in ipairs(expired) do freed = freed + (tonumber(string.match(m, ':(%d+)$')) or 0) end
  redis.call('ZREM', KEYS[3], unpack(expired))
  redis.call('DECRBY', KEYS[4], freed)
end
if redis.call('ZCARD', KEYS[3]) == 0 then redis.call('DEL', KEYS[4]) end
local size = string.len(ARGV[1])
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[5]) then return 1 end
if tonumber(redis.call('GET', KEYS[2]) or '0') + size > tonumber(ARGV[6]) then return 2 end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then return 3 end
if tonumber(redis.call('GET', KEYS[4]) or '0') + size > tonumber(ARGV[8]) then return 4 end
${counted("RPUSH")}
return 0`;

/**
 * An entry back at the head of its device's list, counted again, without a bound check (it had its place):
 * a delivery stopped by a shutdown before it was sent. KEYS as ENQUEUE's. ARGV: entry, deadline, member.
 */
const REQUEUE = `
local size = string.len(ARGV[1])
${counted("LPUSH")}
return 0`;

/** The next entry of a device's list, its bytes taken off both counts. KEYS as ENQUEUE's. */
const DEQUEUE = `
local raw = redis.call('LPOP', KEYS[1])
if not raw then
  redis.call('DEL', KEYS[2])
  return false
end
local size = string.len(raw)
if redis.call('DECRBY', KEYS[2], size) <= 0 then redis.call('DEL', KEYS[2]) end
local ok, item = pcall(cjson.decode, raw)
if ok and type(item) == 'table' and type(item.id) == 'string' then
  if redis.call('ZREM', KEYS[3], item.id .. ':' .. size) == 1 then
    if redis.call('DECRBY', KEYS[4], size) <= 0 then redis.call('DEL', KEYS[4]) end
  end
end
return raw`;

const BOUNDS = ["entries for this device", "bytes for this device", "entries in all", "bytes in all"] as const;

/**
 * Asynchronous requests for a device known to be offline wait in `{prefix}queue:{jid}` (a Redis list, so any
 * instance can take them) until the device announces itself; then one instance, holding a short lock,
 * delivers them in order. Requests past their deadline are expired instead of delivered. The queue is
 * bounded (QueueLimits): a request that does not fit is refused, never kept in memory instead.
 */
export class OfflineQueue {
  private readonly log: Logger;
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
    this.enqueueScript = redis.script<number>("enqueueOffline", 4, ENQUEUE);
    this.dequeueScript = redis.script<string | null>("dequeueOffline", 4, DEQUEUE);
    this.requeueScript = redis.script<number>("requeueOffline", 4, REQUEUE);
  }

  /** Queues the request, or throws 503 GW_DEVICE_OFFLINE saying which bound it did not fit in. */
  async enqueue(jid: string, item: QueuedRequest, now = Date.now()): Promise<void> {
    const entry = JSON.stringify(item);
    const { maxPerDevice, maxBytesPerDevice, maxTotal, maxTotalBytes } = this.limits;
    const member = `${item.id}:${Buffer.byteLength(entry)}`;
    const r = await this.enqueueScript(
      ...this.keys(jid),
      entry,
      item.deadline,
      now,
      member,
      maxPerDevice,
      maxBytesPerDevice,
      maxTotal,
      maxTotalBytes,
    );
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
    const keys = this.keys(jid);
    const lock = this.redis.keys.offlineQueueDrain(jid);
    const owner = `${process.pid}-${Date.now()}`;
    const locked = await this.redis.run((c) => c.set(lock, owner, "PX", this.lockMs, "NX"));
    if (locked !== "OK") return;
    try {
      for (;;) {
        const raw = await this.dequeueScript(...keys);
        if (!raw) return;
        const item = JSON.parse(raw) as QueuedRequest;
        try {
          if (Date.now() > item.deadline) await expire(item);
          else if ((await deliver(item)) === "stop") {
            await this.requeueScript(...keys, raw, item.deadline, `${item.id}:${Buffer.byteLength(raw)}`);
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

  private keys(jid: string): [string, string, string, string] {
    const { keys } = this.redis;
    return [keys.offlineQueue(jid), keys.offlineQueueBytes(jid), keys.offlineQueuedTotal(), keys.offlineQueuedBytesTotal()];
  }
}
