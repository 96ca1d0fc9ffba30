import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";

/**
 * A device's requests in flight, counted across all instances (DESIGN.md §6 GW_DEVICE_BUSY): small devices
 * answer one request at a time, and a burst must not pile up behind a slow one. Each request holds a slot
 * in `{prefix}inflight:{deviceId}`, a sorted set scored by the request's deadline; slots of requests whose
 * instance died are reclaimed when their deadline passes, so a crash cannot leak capacity forever.
 */
const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1`;


export class DeviceLimiter {
  /** (key, now, max, deadline, slot id) → 1 taken, 0 full. */
  private readonly acquireSlot: (...args: Array<string | number>) => Promise<number>;
  private slots = 0;

  constructor(private readonly redis: RedisStore, private readonly slot: { instanceId: string; retryAfterS: number }) {
    this.acquireSlot = redis.script<number>("acquireSlot", 1, ACQUIRE);
  }

  /** Takes a slot or throws 429 GW_DEVICE_BUSY; the returned function gives the slot back. */
  async acquire(deviceId: string, maxInFlight: number, timeoutMs: number): Promise<() => void> {
    const key = this.redis.key("inflight", deviceId);
    const id = `${this.slot.instanceId}:${++this.slots}`;
    const now = Date.now();
    const ok = await this.acquireSlot(key, now, maxInFlight, now + timeoutMs + 1000, id);
    if (ok !== 1) {
      throw new GatewayError("GW_DEVICE_BUSY", { message: `device already has ${maxInFlight} requests in flight`, retryAfterS: this.slot.retryAfterS });
    }
    return () => {
      this.redis.run((c) => c.zrem(key, id)).catch(() => undefined); // else it expires at the deadline
    };
  }
}
