import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";

/**
 * GCRA (the generic cell rate algorithm of ATM traffic shaping, ITU-T I.371): one key per client holding
 * its "theoretical arrival time" (TAT). A request is let through when it does not come earlier than
 * TAT - burst tolerance; each one pushes TAT on by one emission interval. It allows `burst` requests at
 * once and `ratePerS` on average, with no window edges to exploit (a fixed window lets twice the rate
 * through across a boundary) and one key per client. Time is Redis's own (TIME), so the instances of a
 * fleet, whose clocks differ, share one consistent view; Redis 5+ replicates the script's effects, not
 * the script, so TIME is allowed here.
 *
 * KEYS: the client's key. ARGV: emission interval (µs), burst tolerance (µs).
 * Answers {1, 0} when let through, {0, µs until the next request would be} when not.
 */
const GCRA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, tolerance = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait > 0 then return {0, wait} end
local nextTat = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', nextTat), 'PX', math.ceil((nextTat - now) / 1000) + 1)
return {1, 0}`;

export interface ClientRate {
  /** Requests per second, on average. */
  ratePerS: number;
  /** Requests a client may send at once after a quiet spell (at least 1). */
  burst: number;
}

/** The per-client rate limit, shared by every instance through Redis (429 GW_RATE_LIMITED with Retry-After). */
export class ClientRateLimiter {
  private readonly gcra: (...args: Array<string | number>) => Promise<[number, number]>;
  private readonly intervalUs: number;
  private readonly toleranceUs: number;

  constructor(
    private readonly redis: RedisStore,
    rate: ClientRate,
  ) {
    this.gcra = redis.script<[number, number]>("clientRate", 1, GCRA);
    this.intervalUs = Math.max(1, Math.round(1e6 / rate.ratePerS));
    this.toleranceUs = this.intervalUs * (Math.max(1, rate.burst) - 1);
  }

  /** Lets the request through, or throws 429 GW_RATE_LIMITED (GW_STORE_UNAVAILABLE when Redis is down). */
  async check(client: string): Promise<void> {
    const [allowed, waitUs] = await this.gcra(this.redis.keys.clientRate(client), this.intervalUs, this.toleranceUs);
    if (allowed === 1) return;
    throw new GatewayError("GW_RATE_LIMITED", { retryAfterS: Math.max(1, Math.ceil(waitUs / 1e6)) });
  }
}
