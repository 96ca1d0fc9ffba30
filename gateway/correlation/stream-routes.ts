import { normalizeJid } from "../../adapters/shared/jid.js";
import type { RedisStore } from "../redis/client.js";

/**
 * Where the `<chunk>` messages of a chunked reply belong (DESIGN.md §5). Chunks can reach any instance, even
 * before the IQ result that announces their stream; so a stream is tied to its owner in Redis when the owner
 * learns of it (`claim`), and a chunk that arrives elsewhere either finds its owner (`route`) or waits in a
 * Redis list that the claim drains. Both are Lua scripts, so a chunk can never slip in between a failed
 * lookup and a claim.
 */
const ROUTE = `
local owner = redis.call('GET', KEYS[1])
if owner then return owner end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[3]) then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1`;

const CLAIM = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local parked = redis.call('LRANGE', KEYS[2], 0, -1)
redis.call('DEL', KEYS[2])
return parked`;

export type RouteResult = { owner: string } | { parked: true } | { full: true };

export class StreamRoutes {
  /** (stream key, park key, payload, park ttl, max parked) → the owner, 1 parked, or 0 full. */
  private readonly routeChunk: (...args: Array<string | number>) => Promise<string | number>;
  /** (stream key, park key, owner, ttl) → the chunks that were parked. */
  private readonly claimStream: (...args: Array<string | number>) => Promise<string[]>;

  constructor(private readonly redis: RedisStore, private readonly limits: { parkTtlMs: number; maxParked: number }) {
    this.routeChunk = redis.script<string | number>("routeChunk", 2, ROUTE);
    this.claimStream = redis.script<string[]>("claimStream", 2, CLAIM);
  }

  /** For a chunk whose stream is not local: its owner, or parked until the owner claims the stream. */
  async route(jid: string, streamId: string, payload: string): Promise<RouteResult> {
    const [streamKey, parkKey] = this.keys(jid, streamId);
    const r = await this.routeChunk(streamKey, parkKey, payload, this.limits.parkTtlMs, this.limits.maxParked);
    if (typeof r === "string") return { owner: r };
    return r === 1 ? { parked: true } : { full: true };
  }

  /** Ties the stream to its owner until `ttlMs`, and hands back the chunks that were parked for it. */
  async claim(jid: string, streamId: string, owner: string, ttlMs: number): Promise<string[]> {
    const [streamKey, parkKey] = this.keys(jid, streamId);
    return this.claimStream(streamKey, parkKey, owner, Math.max(1, ttlMs));
  }

  private keys(jid: string, streamId: string): [string, string] {
    const id = `${normalizeJid(jid)}|${streamId}`;
    return [this.redis.key("stream", id), this.redis.key("parked", id)];
  }
}
