/**
 * XEP-0332 codec, generative: 200 seeded random requests and responses (methods, resources, header lists,
 * bodies of every kind up to 200 KiB, thresholds and chunk sizes) go encode → serialize → ltx.parse → decode
 * (+ chunks, shuffled, through ChunkAssembler) and come back byte-exact. The PRNG is seeded: a failure names
 * its case number and reproduces.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ChunkAssembler,
  HTTP_METHODS,
  clampChunkSize,
  decodeChunk,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  serialize,
  textOf,
  type DecodedBody,
  type EncodeOptions,
  type XmlElement,
} from "../../lib/xep0332/index.js";
import { parseXml, formOf } from "../helpers/xml.js";
import { XML_SAFE_TEXT_ATOMS } from "../helpers/fuzz.js";

/** mulberry32: small, fast, seedable. */
function prng(seed: number): {
  next: () => number;
  int: (lo: number, hi: number) => number;
  pick: <T>(xs: readonly T[]) => T;
  chance: (p: number) => boolean;
} {
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  return { next, int, pick: (xs) => xs[int(0, xs.length - 1)] as (typeof xs)[number], chance: (p) => next() < p };
}
type Rng = ReturnType<typeof prng>;

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const VALUE_CHARS = ` !"#$%&'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_\`abcxyz{|}~\t\u00a0\u00e9\u00ff]]>`;
const RESOURCE_CHARS = "abcXYZ019-._~!$&'()*+,;=:@%/?\"<>[]{}|^`\u00e9\u4e2d";
const COMMON_NAMES = ["Host", "Accept", "accept", "Content-Type", "X-Trace", "Set-Cookie", "Cache-Control", "ETag", "X-Device-Id"];

const TEXT_TYPES = [
  "text/plain",
  "application/json",
  "application/problem+json",
  "text/html;charset=utf-8",
  "application/xml",
  "text/csv; charset=UTF-8",
];
const BINARY_TYPES = ["application/octet-stream", "image/png", "image/jpeg", undefined];

type BodyKind = "empty" | "text" | "text-cr" | "text-forbidden" | "invalid-utf8" | "latin1" | "binary" | "text-untyped";

function randomString(rng: Rng, chars: string, min: number, max: number): string {
  const len = rng.int(min, max);
  let s = "";
  const arr = [...chars];
  for (let i = 0; i < len; i++) s += rng.pick(arr);
  return s;
}

function randomSize(rng: Rng): number {
  const r = rng.next();
  if (r < 0.4) return rng.int(1, 300);
  if (r < 0.75) return rng.int(300, 8192);
  return rng.int(8192, 200 * 1024);
}

function safeText(rng: Rng, bytes: number): string {
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    const atom = rng.pick(XML_SAFE_TEXT_ATOMS);
    parts.push(atom);
    n += Buffer.byteLength(atom);
  }
  return parts.join("");
}

function randomBytesSeeded(rng: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i += 4) {
    const v = Math.floor(rng.next() * 4294967296);
    b[i] = v & 0xff;
    if (i + 1 < n) b[i + 1] = (v >>> 8) & 0xff;
    if (i + 2 < n) b[i + 2] = (v >>> 16) & 0xff;
    if (i + 3 < n) b[i + 3] = v >>> 24;
  }
  return b;
}

function insertAt(s: string, at: number, what: string): string {
  return s.slice(0, at) + what + s.slice(at);
}

/** A body, its Content-Type (if any), and the inline form the codec must choose for it. */
function randomBody(rng: Rng): { kind: BodyKind; body: Buffer; contentType: string | undefined; inlineForm: "none" | "text" | "base64" } {
  const kind = rng.pick<BodyKind>([
    "empty",
    "text",
    "text",
    "text",
    "text-cr",
    "text-forbidden",
    "invalid-utf8",
    "latin1",
    "binary",
    "binary",
    "text-untyped",
  ]);
  const size = randomSize(rng);
  switch (kind) {
    case "empty":
      return { kind, body: Buffer.alloc(0), contentType: rng.pick([...TEXT_TYPES, ...BINARY_TYPES]), inlineForm: "none" };
    case "text":
      return { kind, body: Buffer.from(safeText(rng, size), "utf8"), contentType: rng.pick(TEXT_TYPES), inlineForm: "text" };
    case "text-cr": {
      const s = safeText(rng, size);
      return {
        kind,
        body: Buffer.from(insertAt(s, rng.int(0, s.length), rng.pick(["\r", "\r\n"])), "utf8"),
        contentType: rng.pick(TEXT_TYPES),
        inlineForm: "base64",
      };
    }
    case "text-forbidden": {
      const s = safeText(rng, size);
      const bad = rng.pick(["\u0000", "\u0001", "\u0008", "\u000B", "\u001B", "\uFFFE", "\uFFFF"]);
      return {
        kind,
        body: Buffer.from(insertAt(s, rng.int(0, s.length), bad), "utf8"),
        contentType: rng.pick(TEXT_TYPES),
        inlineForm: "base64",
      };
    }
    case "invalid-utf8": {
      const good = Buffer.from(safeText(rng, size), "utf8");
      const at = rng.int(0, good.length);
      const bad = Buffer.from(rng.pick([[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0x80]]));
      // A truncated sequence right before a continuation-free ASCII byte stays invalid; keep it simple by
      // appending an ASCII byte after the bad bytes.
      return {
        kind,
        body: Buffer.concat([good.subarray(0, at), bad, Buffer.from("x"), good.subarray(at)]),
        contentType: rng.pick(TEXT_TYPES),
        inlineForm: "base64",
      };
    }
    case "latin1":
      return {
        kind,
        body: Buffer.from(randomString(rng, "abc XYZ\u00e9\u00e8\u00ff", 1, Math.min(size, 5000)), "latin1"),
        contentType: "text/plain; charset=iso-8859-1",
        inlineForm: "base64",
      };
    case "binary":
      return { kind, body: randomBytesSeeded(rng, size), contentType: rng.pick(BINARY_TYPES), inlineForm: "base64" };
    case "text-untyped":
      return {
        kind,
        body: Buffer.from(safeText(rng, Math.min(size, 2000)), "utf8"),
        contentType: rng.pick(["image/png", undefined, "application/octet-stream"]),
        inlineForm: "base64",
      };
  }
}

function randomHeaders(rng: Rng, contentType: string | undefined): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  const count = rng.int(0, 8);
  for (let i = 0; i < count; i++) {
    const name = rng.chance(0.5) ? rng.pick(COMMON_NAMES) : randomString(rng, TOKEN_CHARS, 1, 24);
    if (name.toLowerCase() === "content-type") continue;
    headers.push([name, rng.chance(0.1) ? "" : randomString(rng, VALUE_CHARS, 1, 60)]);
  }
  if (contentType !== undefined)
    headers.splice(rng.int(0, headers.length), 0, [rng.pick(["Content-Type", "content-type", "CONTENT-TYPE"]), contentType]);
  return headers;
}

function randomResource(rng: Rng, method: string): string {
  if (method === "OPTIONS" && rng.chance(0.3)) return "*";
  let r = "/" + randomString(rng, RESOURCE_CHARS, 0, 80);
  if (rng.chance(0.5)) r += "?" + randomString(rng, RESOURCE_CHARS, 0, 40);
  return r;
}

function randomStatusMessage(rng: Rng): string | undefined {
  if (rng.chance(0.2)) return undefined;
  return randomString(rng, `abcdefXYZ 0123 '"<>&]]>\t\u00e9-`, 0, 40);
}

function randomOpts(rng: Rng, seed: number): EncodeOptions & { maxChunkSize?: number } {
  const chunkThreshold = rng.pick([0, 256, 1024, 8192, 65536, rng.int(0, 100_000)]);
  const chunkSize = rng.pick([1, 256, 1000, 4096, 32768, 65536, 100_000, rng.int(1, 80_000)]);
  let n = 0;
  return {
    chunkThreshold,
    chunkSize,
    newStreamId: () => `gen-${seed}-${++n}`,
    ...(rng.chance(0.5) ? { maxChunkSize: rng.int(0, 100_000) } : {}),
  };
}

function reassemble(body: DecodedBody, chunks: XmlElement[], chunkSize: number, rng: Rng, label: string): Buffer {
  if (body.kind === "inline") {
    assert.equal(chunks.length, 0, `${label}: no chunks for an inline body`);
    return body.bytes;
  }
  assert.ok(chunks.length >= 1, `${label}: a chunked body has chunks`);
  chunks.forEach((c, i) => {
    assert.equal(c.attrs.nr, String(i), `${label}: nr contiguous from 0`);
    assert.equal(c.attrs.last, i === chunks.length - 1 ? "true" : undefined, `${label}: last only on the final chunk`);
    assert.ok(Buffer.from(textOf(c), "base64").length <= chunkSize, `${label}: chunk ${i} within chunkSize`);
  });
  const order = chunks.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const assembler = new ChunkAssembler(1024 * 1024);
  for (const i of order) {
    const chunk = decodeChunk(parseXml(serialize(chunks[i] as XmlElement)));
    assert.equal(chunk.streamId, body.streamId, `${label}: chunk streamId`);
    assembler.add(chunk);
  }
  assert.ok(assembler.complete, `${label}: stream complete`);
  return assembler.take();
}

describe("xep0332 generative round trip", () => {
  it("200 seeded random requests and responses survive encode → XML text → decode byte-exact", () => {
    const SEED = 0x332;
    const rng = prng(SEED);
    const seen = { text: 0, base64: 0, chunkedBase64: 0, none: 0, requests: 0, responses: 0 };
    for (let i = 0; i < 200; i++) {
      const o = randomOpts(rng, i);
      const { kind, body, contentType, inlineForm } = randomBody(rng);
      const headers = randomHeaders(rng, contentType);
      const expectedForm = body.length === 0 ? "none" : body.length > o.chunkThreshold ? "chunkedBase64" : inlineForm;
      const label = `case ${i} (seed ${SEED}, ${kind}, ${body.length} B, ${String(contentType)}, threshold ${o.chunkThreshold}, chunkSize ${o.chunkSize})`;

      if (rng.chance(0.5)) {
        seen.requests++;
        const method = rng.pick(HTTP_METHODS);
        const resource = randomResource(rng, method);
        const enc = encodeRequest({ method, resource, headers, body }, o);
        assert.equal(formOf(enc.payload), expectedForm, `${label}: body form`);
        const dec = decodeRequest(parseXml(serialize(enc.payload)));
        assert.equal(dec.method, method, label);
        assert.equal(dec.resource, resource, label);
        assert.equal(dec.version, "1.1", label);
        assert.deepEqual(dec.headers, headers, label);
        assert.equal(dec.maxChunkSize, o.maxChunkSize === undefined ? undefined : clampChunkSize(o.maxChunkSize), label);
        const bytes = reassemble(dec.body, enc.chunks, clampChunkSize(o.chunkSize), rng, label);
        assert.ok(bytes.equals(body), `${label}: body bytes`);
      } else {
        seen.responses++;
        const statusCode = rng.int(100, 599);
        const statusMessage = randomStatusMessage(rng);
        const enc = encodeResponse({ statusCode, ...(statusMessage === undefined ? {} : { statusMessage }), headers, body }, o);
        assert.equal(formOf(enc.payload), expectedForm, `${label}: body form`);
        const dec = decodeResponse(parseXml(serialize(enc.payload)));
        assert.equal(dec.statusCode, statusCode, label);
        assert.equal(dec.statusMessage, statusMessage ?? "", label);
        assert.deepEqual(dec.headers, headers, label);
        const bytes = reassemble(dec.body, enc.chunks, clampChunkSize(o.chunkSize), rng, label);
        assert.ok(bytes.equals(body), `${label}: body bytes`);
      }
      seen[expectedForm]++;
    }
    // The generator must actually cover every path, or the check proves little.
    for (const [k, v] of Object.entries(seen)) assert.ok(v >= 10, `generator produced only ${v} × ${k}`);
  });
});
