import type { RedisStore } from "../redis/client.js";

/**
 * Where the `<chunk>` messages of a chunked reply belong (README, "Running several instances"). Chunks can reach any instance, even
 * before the IQ result that announces their stream; so a stream is tied to its owner in Redis when the owner
 * learns of it (`claim`), and a chunk that arrives elsewhere either finds its owner (`route`) or waits in a
 * Redis list that the claim drains. Both are Lua scripts, so a chunk can never slip in between a failed
 * lookup and a claim.
 *
 * Parking is bounded like any receiver's buffer:
 * - only a sender with an exchange in flight (CorrelationStore's `exchanges:{jid}`) can have a stream still
 *   to announce: anyone else's chunk is refused (2), or any JID on the XMPP server could fill Redis with
 *   chunks nobody will ever claim;
 * - a sender parks at most `maxParkedBytes` per exchange it has in flight, across all its stream ids. Past
 *   that the chunk is refused and the stream marked, so that its claim fails it (too large) at once rather
 *   than let it wait for chunks that were thrown away;
 * - parked lists and the byte count live no longer than the sender's latest deadline: by then no reply of
 *   that sender can claim them.
 */
const ROUTE = `
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[4])
local inflight = redis.call('ZCARD', KEYS[3])
if inflight == 0 then return 2 end
local latest = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
local ttl = math.max(1, math.min(tonumber(ARGV[2]), math.floor(tonumber(latest[2]) - tonumber(ARGV[4]))))
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
local size = string.len(ARGV[1])
if tonumber(redis.call('GET', KEYS[4]) or '0') + size > tonumber(ARGV[5]) * inflight then
  if redis.call('LINDEX', KEYS[2], -1) ~= ARGV[6] then
    redis.call('RPUSH', KEYS[2], ARGV[6])
    redis.call('PEXPIRE', KEYS[2], ttl)
  end
  return 0
end
redis.call('INCRBY', KEYS[4], size)
redis.call('PEXPIRE', KEYS[4], ttl)
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1`;

const CLAIM = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local parked = redis.call('LRANGE', KEYS[2], 0, -1)
if #parked == 0 then return parked end
redis.call('DEL', KEYS[2])
local size = 0
for _, p in ipairs(parked) do if p ~= ARGV[3] then size = size + string.len(p) end end
if redis.call('DECRBY', KEYS[3], size) <= 0 then redis.call('DEL', KEYS[3]) end
return parked`;

/** Marks a parked list whose sender went over its byte bound; never a parked chunk (those are JSON objects). */
const OVERFLOW = "overflow";

export type RouteResult = { owner: string } | { parked: true } | { full: true } | { stranger: true };

export interface Claimed {
  /** The chunk messages that waited for the stream, in arrival order. */
  parked: string[];
  /** Chunks of the stream were refused for want of room: it can never complete. */
  overflowed: boolean;
}

export interface ParkLimits {
  /** The longest a parked list may wait (never past the sender's latest deadline). */
  parkTtlMs: number;
  /** Chunks per stream. */
  maxParked: number;
  /** Bytes (parked payloads) per exchange the sender has in flight. */
  maxParkedBytes: number;
}

export class StreamRoutes {
  /** (stream key, park key, sender's exchanges key, sender's parked bytes key, payload, park ttl, max parked,
   * now, max bytes, overflow mark) → the owner, 1 parked, 0 full, or 2 the sender has no exchange in flight. */
  private readonly routeChunk: (...args: Array<string | number>) => Promise<string | number>;
  /** (stream key, park key, sender's parked bytes key, owner, ttl, overflow mark) → what was parked. */
  private readonly claimStream: (...args: Array<string | number>) => Promise<string[]>;

  constructor(
    private readonly redis: RedisStore,
    private readonly limits: ParkLimits,
  ) {
    this.routeChunk = redis.script<string | number>("routeChunk", 4, ROUTE);
    this.claimStream = redis.script<string[]>("claimStream", 3, CLAIM);
  }

  /** For a chunk whose stream is not local: its owner, or parked until the owner claims the stream. */
  async route(jid: string, streamId: string, payload: string): Promise<RouteResult> {
    const [streamKey, parkKey] = this.keys(jid, streamId);
    const { parkTtlMs, maxParked, maxParkedBytes } = this.limits;
    const r = await this.routeChunk(
      streamKey,
      parkKey,
      this.redis.keys.exchangesTo(jid),
      this.parkedBytesKey(jid),
      payload,
      parkTtlMs,
      maxParked,
      Date.now(),
      maxParkedBytes,
      OVERFLOW,
    );
    if (typeof r === "string") return { owner: r };
    if (r === 2) return { stranger: true };
    return r === 1 ? { parked: true } : { full: true };
  }

  /** Ties the stream to its owner until `ttlMs`, and hands back the chunks that were parked for it. */
  async claim(jid: string, streamId: string, owner: string, ttlMs: number): Promise<Claimed> {
    const [streamKey, parkKey] = this.keys(jid, streamId);
    const raw = await this.claimStream(streamKey, parkKey, this.parkedBytesKey(jid), owner, Math.max(1, ttlMs), OVERFLOW);
    const parked = raw.filter((p) => p !== OVERFLOW);
    return { parked, overflowed: parked.length !== raw.length };
  }

  private keys(jid: string, streamId: string): [string, string] {
    return [this.redis.keys.streamOwner(jid, streamId), this.redis.keys.parkedChunks(jid, streamId)];
  }

  private parkedBytesKey(jid: string): string {
    return this.redis.keys.parkedBytes(jid);
  }
}
