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
 *
 * An entry's deadline is the last moment a delivery of the request may still begin or end, so that it is
 * never read as expired while the device may yet act on it: a request's first attempt runs to its timeout; a
 * queued one waits to the queue's deadline, set before it is queued (an instance killed between the two must
 * not leave a queued request whose result expires with the first attempt's deadline); a queued request
 * taken for delivery runs to that delivery's timeout. The first outcome written stands: a late reply does
 * not replace an expiry a reader already got, nor an expiry a reply, so a client never reads two outcomes
 * for one request; and a queued request whose result a reader already found expired is not delivered.
 */
const EXPIRY_GRACE_MS = 1000;

/**
 * Writes an entry unless the request already ended (its entry is "done"). KEYS: the request's key. ARGV: the
 * entry, its ttl (ms). Answers "" when written, else the entry that stands.
 */
const UNLESS_DONE = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, entry = pcall(cjson.decode, current)
  if ok and type(entry) == 'table' and entry.state == 'done' then return current end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ''`;

export class AsyncRequests {
  private readonly unlessDone: (...args: Array<string | number>) => Promise<string>;

  constructor(
    private readonly redis: RedisStore,
    private readonly resultTtlMs: number,
  ) {
    this.unlessDone = redis.script<string>("asyncRequestUnlessDone", 1, UNLESS_DONE);
  }

  /** Durable (REDIS_WAIT_REPLICAS): a request accepted with 202 must not be forgotten in a failover (404). */
  async accept(deviceId: string, deadline: number): Promise<string> {
    const id = newId();
    const entry: AsyncState = { state: "pending", deviceId, deadline };
    await this.redis.durable(this.key(id), (c) => c.set(this.key(id), JSON.stringify(entry), "PX", this.resultTtlMs));
    return id;
  }

  /**
   * The request (still "pending": a request the queue refuses never reads "queued") may now begin or end
   * until `deadline`. Answers the outcome it already ended with instead, if it did.
   */
  async extend(id: string, deviceId: string, deadline: number): Promise<StoredOutcome | undefined> {
    const standing = await this.write(id, { state: "pending", deviceId, deadline });
    return standing?.state === "done" ? standing.outcome : undefined;
  }

  /** The device turned out to be offline: the request now waits in the queue, and ends by `deadline`. */
  async markQueued(id: string, deviceId: string, deadline: number): Promise<void> {
    // Not over a result already written: the device may have come online and had it delivered meanwhile.
    await this.write(id, { state: "queued", deviceId, deadline });
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
      const standing = await this.write(id, expired);
      return standing ?? expired;
    }
    return entry;
  }

  /** Writes the entry unless the request ended meanwhile; answers the ended entry then. */
  private async write(id: string, entry: AsyncState): Promise<AsyncState | undefined> {
    const standing = await this.unlessDone(this.key(id), JSON.stringify(entry), this.resultTtlMs);
    return standing === "" ? undefined : (JSON.parse(standing) as AsyncState);
  }

  private key(id: string): string {
    return this.redis.keys.asyncRequest(id);
  }
}
