import { newId } from "../correlation/ids.js";
import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";
import { storeError, type StoredOutcome } from "./stored-outcome.js";

/** An asynchronous request as any instance can report it (`GET /requests/{id}`). */
export type AsyncState =
  { state: "pending" | "queued"; deviceId: string; deadline: number } | { state: "done"; deviceId: string; outcome: StoredOutcome };

/**
 * `Prefer: respond-async` (RFC 7240 §4.1; README, "Asynchronous requests"): the client gets 202 and a Location at once; the
 * outcome lands in `{prefix}request:{id}` for GATEWAY_RESULT_TTL_S, readable from every instance. A request
 * still pending or queued after its deadline reads as expired (504 GW_DEVICE_TIMEOUT): a device that never
 * came back, or an instance that died mid-exchange, cannot leave a request pending forever.
 */
const EXPIRY_GRACE_MS = 1000;

/**
 * Marks a request queued unless it already ended: it is queued first and marked after, so that a request the
 * queue refuses never reads "queued"; meanwhile a device that came online may have had it delivered already.
 * KEYS: the request's key. ARGV: the queued entry, its ttl (ms).
 */
const MARK_QUEUED = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, entry = pcall(cjson.decode, current)
  if ok and type(entry) == 'table' and entry.state == 'done' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`;

export class AsyncRequests {
  private readonly markQueuedScript: (...args: Array<string | number>) => Promise<number>;

  constructor(
    private readonly redis: RedisStore,
    private readonly resultTtlMs: number,
  ) {
    this.markQueuedScript = redis.script<number>("markQueued", 1, MARK_QUEUED);
  }

  /** Durable (REDIS_WAIT_REPLICAS): a request accepted with 202 must not be forgotten in a failover (404). */
  async accept(deviceId: string, deadline: number): Promise<string> {
    const id = newId();
    const entry: AsyncState = { state: "pending", deviceId, deadline };
    await this.redis.durable(this.key(id), (c) => c.set(this.key(id), JSON.stringify(entry), "PX", this.resultTtlMs));
    return id;
  }

  /** The device turned out to be offline: the request now waits in the queue until `deadline`. */
  async markQueued(id: string, deviceId: string, deadline: number): Promise<void> {
    const entry: AsyncState = { state: "queued", deviceId, deadline };
    await this.markQueuedScript(this.key(id), JSON.stringify(entry), this.resultTtlMs);
  }

  async complete(id: string, deviceId: string, outcome: StoredOutcome): Promise<void> {
    await this.write(id, { state: "done", deviceId, outcome });
  }

  async get(id: string, now = Date.now()): Promise<AsyncState | undefined> {
    const raw = await this.redis.run((c) => c.get(this.key(id)));
    if (!raw) return undefined;
    const entry = JSON.parse(raw) as AsyncState;
    // A grace period, so that an exchange ending right at its deadline is not reported expired first.
    if (entry.state !== "done" && now > entry.deadline + EXPIRY_GRACE_MS) {
      const expired: AsyncState = {
        state: "done",
        deviceId: entry.deviceId,
        outcome: storeError(new GatewayError("GW_DEVICE_TIMEOUT", { message: "the device did not answer before the request expired" })),
      };
      await this.write(id, expired);
      return expired;
    }
    return entry;
  }

  private async write(id: string, entry: AsyncState): Promise<void> {
    await this.redis.run((c) => c.set(this.key(id), JSON.stringify(entry), "PX", this.resultTtlMs));
  }

  private key(id: string): string {
    return this.redis.keys.asyncRequest(id);
  }
}
