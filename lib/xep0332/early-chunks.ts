import type { Chunk } from "./chunks.js";
import { normalizeJid } from "../xmpp/jid.js";

/**
 * `<chunk>` messages that arrive before the IQ result announcing their stream (XEP-0332 0.3 added `nr`
 * because servers may reorder; ejabberd spreads one domain's stanzas over several connections). They wait
 * here, bounded in bytes and age, until the result claims them.
 */
export class EarlyChunks {
  private readonly streams = new Map<string, { chunks: Chunk[]; bytes: number; since: number }>();
  private total = 0;

  constructor(private readonly limits: { maxBytes: number; maxAgeMs: number }) {}

  get bufferedBytes(): number {
    return this.total;
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Keeps a chunk; false when the bound is reached (the caller drops and counts it). */
  add(jid: string, chunk: Chunk, now = Date.now()): boolean {
    this.expire(now);
    if (this.total + chunk.bytes.length > this.limits.maxBytes) return false;
    const key = `${normalizeJid(jid)}\n${chunk.streamId}`;
    let stream = this.streams.get(key);
    if (!stream) {
      stream = { chunks: [], bytes: 0, since: now };
      this.streams.set(key, stream);
    }
    stream.chunks.push(chunk);
    stream.bytes += chunk.bytes.length;
    this.total += chunk.bytes.length;
    return true;
  }

  take(jid: string, streamId: string, now = Date.now()): Chunk[] {
    this.expire(now);
    const key = `${normalizeJid(jid)}\n${streamId}`;
    const stream = this.streams.get(key);
    if (!stream) return [];
    this.streams.delete(key);
    this.total -= stream.bytes;
    return stream.chunks;
  }

  /** Map order is insertion order, so the oldest streams come first. */
  private expire(now: number): void {
    for (const [key, stream] of this.streams) {
      if (now - stream.since < this.limits.maxAgeMs) break;
      this.streams.delete(key);
      this.total -= stream.bytes;
    }
  }
}
