import { ChunkAssembler, type Chunk } from "./chunks.js";
import { CodecError } from "./errors.js";
import { EarlyChunks } from "./early-chunks.js";
import { normalizeJid } from "../xmpp/jid.js";

/** Rejection of a stream its owner gave up on (deadline, shutdown): not the sender's fault. */
export class StreamCancelled extends Error {
  override readonly name = "StreamCancelled";
}

interface Active {
  assembler: ChunkAssembler;
  resolve(body: Buffer): void;
  reject(err: unknown): void;
}

/**
 * Receives chunkedBase64 bodies (XEP-0332 §3) for both ends: the gateway (device replies) and the agent
 * (request bodies). A stream is expected once the IQ that announces it arrives; chunks that come first wait
 * in a bounded early buffer, but only from senders the owner vouches for (`acceptEarly`).
 */
export class InboundStreams {
  private readonly active = new Map<string, Active>();
  private readonly early: EarlyChunks;

  constructor(
    limits: { maxEarlyBytes: number; maxEarlyAgeMs: number },
    private readonly acceptEarly: (from: string) => boolean,
  ) {
    this.early = new EarlyChunks({ maxBytes: limits.maxEarlyBytes, maxAgeMs: limits.maxEarlyAgeMs });
  }

  get activeCount(): number {
    return this.active.size;
  }

  get earlyBytes(): number {
    return this.early.bufferedBytes;
  }

  /** Streams with chunks waiting in the early buffer (zero-length chunks hold no bytes, but do hold entries). */
  get earlyCount(): number {
    return this.early.streamCount;
  }

  /** Resolves with the whole body in `nr` order; rejects with a CodecError, or StreamCancelled. */
  expect(from: string, streamId: string, maxBytes: number): Promise<Buffer> {
    const key = streamKey(from, streamId);
    // A sender reusing a stream id that is still open cannot be told apart: the newcomer is refused.
    if (this.active.has(key)) return Promise.reject(new CodecError("malformed", `stream ${streamId} is already open`));
    const promise = new Promise<Buffer>((resolve, reject) => {
      this.active.set(key, { assembler: new ChunkAssembler(maxBytes), resolve, reject });
    });
    for (const chunk of this.early.take(from, streamId)) this.offer(from, chunk);
    return promise;
  }

  has(from: string, streamId: string): boolean {
    return this.active.has(streamKey(from, streamId));
  }

  /** Feeds one chunk; false when nobody expects it and it may not wait (the caller drops and counts it). */
  offer(from: string, chunk: Chunk): boolean {
    const key = streamKey(from, chunk.streamId);
    const stream = this.active.get(key);
    if (!stream) return this.acceptEarly(from) && this.early.add(from, chunk);
    try {
      stream.assembler.add(chunk);
    } catch (err) {
      this.active.delete(key);
      stream.reject(err);
      return true;
    }
    if (stream.assembler.complete) {
      this.active.delete(key);
      stream.resolve(stream.assembler.take());
    }
    return true;
  }

  /**
   * Ends a stream with an error (a malformed chunk), or as cancelled by its owner. True when the stream was
   * still open: its sender may still be sending, and is worth a `<close>`.
   */
  fail(from: string, streamId: string, err: unknown = new StreamCancelled(`stream ${streamId} cancelled`)): boolean {
    const key = streamKey(from, streamId);
    const stream = this.active.get(key);
    if (!stream) return false;
    this.active.delete(key);
    stream.reject(err);
    return true;
  }
}

function streamKey(from: string, streamId: string): string {
  return `${normalizeJid(from)}\n${streamId}`;
}
