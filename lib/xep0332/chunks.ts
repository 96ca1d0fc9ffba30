import { MIN_CHUNK_SIZE, NS_HTTP } from "./constants.js";
import { CodecError, malformed } from "./errors.js";
import { decodeBase64 } from "./body.js";
import { el, textOf, type XmlElement } from "./xml.js";

/**
 * XEP-0332 §3 chunkedBase64: the body follows the IQ as `<chunk streamId nr last>` payloads, each wrapped by
 * the caller in a `<message>` from the same full JID. Every chunk is valid base64 on its own (padding
 * included), `nr` counts from 0 (added in XEP-0332 0.3 because servers may reorder), and only the final
 * chunk carries last='true': no empty closing chunk.
 */
export interface Chunk {
  streamId: string;
  nr: number;
  last: boolean;
  bytes: Buffer;
}

export function splitIntoChunks(streamId: string, body: Buffer, chunkSize: number): XmlElement[] {
  if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new RangeError(`chunk size ${chunkSize} is not a positive integer`);
  const out: XmlElement[] = [];
  const count = Math.max(1, Math.ceil(body.length / chunkSize));
  for (let nr = 0; nr < count; nr++) {
    const piece = body.subarray(nr * chunkSize, (nr + 1) * chunkSize);
    const last = nr === count - 1 ? "true" : undefined;
    out.push(el("chunk", { xmlns: NS_HTTP, streamId, nr: String(nr), last }, piece.toString("base64")));
  }
  return out;
}

/** `<close streamId/>` asks the sender to stop a stream (XEP-0332 §3, note on chunkedBase64). */
export function encodeClose(streamId: string): XmlElement {
  return el("close", { xmlns: NS_HTTP, streamId });
}

export function isChunk(node: XmlElement): boolean {
  return node.name === "chunk" && node.attrs.xmlns === NS_HTTP;
}

export function isClose(node: XmlElement): boolean {
  return node.name === "close" && node.attrs.xmlns === NS_HTTP;
}

const MAX_NR = 1_000_000;

export function decodeChunk(node: XmlElement): Chunk {
  if (!isChunk(node)) throw malformed(`expected <chunk xmlns='${NS_HTTP}'>, got <${node.name}>`);
  const { streamId, nr, last } = node.attrs;
  if (!streamId) throw malformed("<chunk> without a streamId");
  if (!nr || !/^\d{1,7}$/.test(nr) || Number(nr) > MAX_NR) throw malformed(`<chunk> nr ${JSON.stringify(nr)} is not a sequence number`);
  if (last !== undefined && last !== "true" && last !== "false" && last !== "1" && last !== "0") {
    throw malformed(`<chunk> last=${JSON.stringify(last)} is not a boolean`);
  }
  return { streamId, nr: Number(nr), last: last === "true" || last === "1", bytes: decodeBase64(textOf(node), "<chunk>") };
}

/**
 * The most chunks a stream of at most `maxBytes` bytes may take. XEP-0332 §9 lets a receiver ask for chunks
 * of no less than MIN_CHUNK_SIZE (256) bytes, and a sender cuts every chunk but the last at the size asked
 * for: so `maxBytes / 256` full chunks, plus a short (or empty) last one. Bytes alone do not bound a stream:
 * a zero-length chunk costs nothing against `maxBytes`, yet each one is an entry held until the stream ends.
 */
export function maxChunksFor(maxBytes: number): number {
  return Math.floor(maxBytes / MIN_CHUNK_SIZE) + 1;
}

/**
 * Reassembles one stream: accepts chunks in any order, refuses duplicates, numbers past the last one, more
 * bytes than the receiver allows, and numbers at or past `maxChunks` (which bounds the chunks held, as `nr`s
 * are distinct). Pure state; the caller owns timing (a stream that never ends is the caller's deadline to
 * enforce).
 */
export class ChunkAssembler {
  private readonly parts = new Map<number, Buffer>();
  private lastNr: number | undefined;
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly maxChunks = maxChunksFor(maxBytes),
  ) {}

  get bufferedBytes(): number {
    return this.bytes;
  }

  get complete(): boolean {
    return this.lastNr !== undefined && this.parts.size === this.lastNr + 1;
  }

  add(chunk: Chunk): void {
    if (this.parts.has(chunk.nr)) throw malformed(`duplicate chunk nr ${chunk.nr}`);
    // Also refuses a number far ahead at once (a stream that skips to nr 999999 can never complete).
    if (chunk.nr >= this.maxChunks) {
      throw new CodecError(
        "too-large",
        `chunk nr ${chunk.nr} is past the ${this.maxChunks} chunks a stream of at most ${this.maxBytes} bytes may take`,
      );
    }
    if (this.lastNr !== undefined && chunk.nr > this.lastNr) throw malformed(`chunk nr ${chunk.nr} after the last (${this.lastNr})`);
    if (chunk.last) {
      if (this.lastNr !== undefined) throw malformed("two chunks marked last");
      for (const nr of this.parts.keys()) if (nr > chunk.nr) throw malformed(`chunk nr ${nr} after the last (${chunk.nr})`);
    }
    // Checked before any state changes: a refused chunk leaves the assembler as it was.
    if (this.bytes + chunk.bytes.length > this.maxBytes) {
      throw new CodecError("too-large", `stream exceeds ${this.maxBytes} bytes`);
    }
    if (chunk.last) this.lastNr = chunk.nr;
    this.bytes += chunk.bytes.length;
    this.parts.set(chunk.nr, chunk.bytes);
  }

  /** The whole body in `nr` order; only once complete. */
  take(): Buffer {
    if (!this.complete) throw new Error("stream is not complete");
    const ordered: Buffer[] = [];
    for (let nr = 0; nr <= (this.lastNr as number); nr++) ordered.push(this.parts.get(nr) as Buffer);
    return Buffer.concat(ordered, this.bytes);
  }
}
