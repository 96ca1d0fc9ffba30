/**
 * XEP-0332 codec, property-based (fast-check):
 *
 * - random requests and responses (methods, resources with queries and odd characters, header lists with
 *   repeats, bodies empty / text / CRLF / binary / invalid UTF-8 across the chunk threshold, random chunk
 *   sizes) go encode → XML text → parse → decode, chunks shuffled through ChunkAssembler, and come back
 *   byte-exact, over both the XMPP libraries' serializer and parser (ltx, as on the wire) and the codec's own;
 * - garbage (random trees, mutated valid payloads, deep nesting, thousands of headers, broken chunk streams)
 *   makes the codec throw nothing but CodecError, and whatever it accepts is legal HTTP.
 *
 * The seed is fixed so a run reproduces; FUZZ_SEED=n replays another one, FUZZ_SCALE=k runs k times as many
 * cases. On failure fast-check prints the seed, the path and the shrunk counterexample.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as fc from "fast-check";
import xml, { Parser, type Element } from "@xmpp/xml";
import {
  ChunkAssembler,
  CodecError,
  HTTP_METHODS,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  NS_HTTP,
  NS_SHIM,
  childElements,
  clampChunkSize,
  decodeChunk,
  decodeData,
  decodeHeaders,
  decodeRequest,
  decodeResponse,
  el,
  encodeRequest,
  encodeResponse,
  isHttpMethod,
  isLegalHeader,
  isTextualContentType,
  serialize,
  textOf,
  type Chunk,
  type DecodedBody,
  type EncodeOptions,
  type XmlElement,
  type XmlNode,
} from "../../lib/xep0332/index.js";
import { toLibraryElement, type XmlFactory } from "../../lib/xmpp/elements.js";
import { parseXml, formOf } from "../helpers/xml.js";
import { fuzzParams, fuzzSeed, seededBytes, shuffled, XML_SAFE_TEXT_ATOMS } from "../helpers/fuzz.js";

// ------------------------------------------------------------------------------------------------ setup

const SEED = fuzzSeed("xep0332 codec", 0x332f0cc);

function params<T>(numRuns: number): fc.Parameters<T> {
  return fuzzParams<T>(SEED, numRuns);
}

// ------------------------------------------------------------------------------------------- the wires

const factory = xml as unknown as XmlFactory<Element>;

/**
 * As on an XMPP connection: the element built with the XMPP library's `xml()` and written with its
 * `toString()`, read back by the library's stream parser as a child of the stream root.
 */
function overLtxWire(node: XmlElement): XmlElement {
  const text = toLibraryElement(factory, node).toString();
  const parser = new Parser();
  let stanza: Element | undefined;
  let failure: Error | undefined;
  parser.on("element", (e: Element) => {
    stanza = e;
  });
  parser.on("error", (e: Error) => {
    failure = e;
  });
  parser.write("<stream>");
  parser.write(text);
  if (failure !== undefined) throw new Error(`wire parser refused ${text.slice(0, 200)}: ${String(failure)}`, { cause: failure });
  assert.ok(stanza, `wire parser produced no stanza for ${text.slice(0, 200)}`);
  return stanza;
}

/** The codec's own serializer (also used for `<xml>` bodies), parsed by ltx. */
function overCodecWire(node: XmlElement): XmlElement {
  return parseXml(serialize(node));
}

type Wire = "ltx" | "codec";
const wires: Record<Wire, (node: XmlElement) => XmlElement> = { ltx: overLtxWire, codec: overCodecWire };
const wireArb = fc.constantFrom<Wire>("ltx", "codec");

// ------------------------------------------------------------------------------------ HTTP arbitraries

const charsOf = (chars: string): fc.Arbitrary<string> => fc.constantFrom(...[...chars]);

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const COMMON_NAMES = [
  "Host",
  "Accept",
  "accept",
  "ACCEPT",
  "X-Trace",
  "Set-Cookie",
  "set-cookie",
  "Cache-Control",
  "ETag",
  "Authorization",
  "Cookie",
  "Vary",
];

const tokenArb = fc.string({ unit: charsOf(TOKEN_CHARS), minLength: 1, maxLength: 24 });
const headerNameArb = fc.oneof(fc.constantFrom(...COMMON_NAMES), tokenArb).filter((n) => n.toLowerCase() !== "content-type");

/** RFC 9110 field-value characters: HTAB, SP, VCHAR and obs-text, markup look-alikes included. */
const fieldCharArb = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.constantFrom("\t", "<", "&", ">", "]]>", "&amp;", "&#13;", '"', "'") },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)) },
);
const fieldValueArb = fc.string({ unit: fieldCharArb, maxLength: 60 });

const TEXT_TYPES = [
  "text/plain",
  "application/json",
  "application/problem+json",
  "text/html;charset=utf-8",
  "application/xml",
  "text/csv; charset=UTF-8",
  "application/x-www-form-urlencoded",
];
const OTHER_TYPES = ["application/octet-stream", "image/png", "text/plain; charset=iso-8859-1", "text/plain; charset=utf-16"];
const contentTypeArb = fc.option(
  fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...TEXT_TYPES) }, { weight: 1, arbitrary: fc.constantFrom(...OTHER_TYPES) }),
  { nil: undefined, freq: 5 },
);

/** A header list with repeats (the same name again, in another case), the content type anywhere in it. */
const headersArb = (contentType: string | undefined): fc.Arbitrary<Array<[string, string]>> =>
  fc
    .record({
      base: fc.array(fc.tuple(headerNameArb, fieldValueArb), { maxLength: 10 }),
      repeats: fc.array(fc.tuple(fc.nat(), fc.constantFrom("same", "lower", "upper"), fieldValueArb), { maxLength: 4 }),
      ctAt: fc.nat(),
      ctName: fc.constantFrom("Content-Type", "content-type", "CONTENT-TYPE"),
    })
    .map(({ base, repeats, ctAt, ctName }) => {
      const headers: Array<[string, string]> = base.map(([n, v]) => [n, v]);
      for (const [at, spelling, value] of repeats) {
        if (headers.length === 0) break;
        const name = (headers[at % headers.length] as [string, string])[0];
        const spelled = spelling === "lower" ? name.toLowerCase() : spelling === "upper" ? name.toUpperCase() : name;
        headers.splice(at % (headers.length + 1), 0, [spelled, value]);
      }
      if (contentType !== undefined) headers.splice(ctAt % (headers.length + 1), 0, [ctName, contentType]);
      return headers;
    });

/** Path and query characters: RFC 3986 pchar, percent escapes, and characters legal only to lenient parsers. */
const RESOURCE_ATOMS = [
  ..."abcXYZ019-._~!$&'()*+,;=:@",
  "%20",
  "%2F",
  "%25",
  "%00",
  "%E2%82%AC",
  '"',
  "<",
  ">",
  "[",
  "]",
  "{",
  "}",
  "|",
  "^",
  "`",
  "\\",
  "é",
  "中",
  "😀",
  "#",
];
const segmentArb = fc.string({ unit: fc.constantFrom(...RESOURCE_ATOMS), maxLength: 16 });
const queryArb = fc.string({ unit: fc.constantFrom(...RESOURCE_ATOMS, "/", "?", "=", "&"), maxLength: 40 });

const resourceArb = (method: string): fc.Arbitrary<string> => {
  const path = fc
    .record({ segments: fc.array(segmentArb, { maxLength: 6 }), trailing: fc.boolean(), query: fc.option(queryArb, { nil: undefined }) })
    .map(
      ({ segments, trailing, query }) =>
        `/${segments.join("/")}${trailing && segments.length > 0 ? "/" : ""}${query === undefined ? "" : `?${query}`}`,
    );
  return method === "OPTIONS" ? fc.oneof({ weight: 1, arbitrary: fc.constant("*") }, { weight: 4, arbitrary: path }) : path;
};

/** Atoms that do not survive XML as they are: CR (normalized away), C0 controls, noncharacters. */
const UNSAFE_ATOMS = ["\r", "\r\n", "\u0000", "\u0001", "\u000B", "\u001B", "\uFFFE", "\uFFFF"];

const sizeArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 300 }) },
  { weight: 3, arbitrary: fc.integer({ min: 300, max: 8192 }) },
  { weight: 1, arbitrary: fc.integer({ min: 8192, max: 48 * 1024 }) },
);

/** A text body of about `size` bytes: a random piece of atoms, repeated. */
const textBodyArb = (atoms: fc.Arbitrary<string>): fc.Arbitrary<Buffer> =>
  fc.tuple(fc.array(atoms, { minLength: 1, maxLength: 64 }), sizeArb).map(([piece, size]) => {
    const unit = Buffer.from(piece.join(""), "utf8");
    return Buffer.concat(Array.from({ length: Math.max(1, Math.ceil(size / Math.max(1, unit.length))) }, () => unit));
  });

type BodyKind = "empty" | "text" | "text-unsafe" | "binary" | "invalid-utf8";

const bodyArb: fc.Arbitrary<{ kind: BodyKind; body: Buffer }> = fc.oneof(
  fc.constant({ kind: "empty" as const, body: Buffer.alloc(0) }),
  textBodyArb(fc.constantFrom(...XML_SAFE_TEXT_ATOMS)).map((body) => ({ kind: "text" as const, body })),
  fc.tuple(textBodyArb(fc.constantFrom(...XML_SAFE_TEXT_ATOMS)), fc.constantFrom(...UNSAFE_ATOMS), fc.nat()).map(([text, bad, at]) => {
    const s = text.toString("utf8");
    const cut = at % (s.length + 1);
    return { kind: "text-unsafe" as const, body: Buffer.from(s.slice(0, cut) + bad + s.slice(cut), "utf8") };
  }),
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => ({ kind: "binary" as const, body: Buffer.from(a) })),
  fc.tuple(sizeArb, fc.integer()).map(([n, seed]) => ({ kind: "binary" as const, body: seededBytes(seed, n) })),
  fc
    .tuple(
      textBodyArb(fc.constantFrom("a", "é", "中")),
      fc.constantFrom([0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82, 0x41], [0x80]),
      fc.nat(),
    )
    .map(([text, bad, at]) => {
      const cut = at % (text.length + 1);
      return { kind: "invalid-utf8" as const, body: Buffer.concat([text.subarray(0, cut), Buffer.from(bad), text.subarray(cut)]) };
    }),
);

interface Opts {
  chunkThreshold: number;
  chunkSize: number;
  maxChunkSize: number | undefined;
}

const optsArb: fc.Arbitrary<Opts> = fc.record({
  chunkThreshold: fc.oneof(fc.constantFrom(0, 1, 256, 1024, 8192, 65536), fc.integer({ min: 0, max: 20_000 })),
  chunkSize: fc.oneof(fc.constantFrom(1, 255, 256, 257, 1000, 4096, 32768, 65536, 65537, 100_000), fc.integer({ min: 1, max: 70_000 })),
  maxChunkSize: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
});

function encodeOptions(o: Opts): EncodeOptions & { maxChunkSize?: number } {
  let n = 0;
  return {
    chunkThreshold: o.chunkThreshold,
    chunkSize: o.chunkSize,
    newStreamId: () => `fz-${++n}`,
    ...(o.maxChunkSize === undefined ? {} : { maxChunkSize: o.maxChunkSize }),
  };
}

const requestArb = fc
  .record({
    method: fc.constantFrom(...HTTP_METHODS),
    contentType: contentTypeArb,
    b: bodyArb,
    opts: optsArb,
    wire: wireArb,
    order: fc.integer(),
  })
  .chain((r) => fc.record({ resource: resourceArb(r.method), headers: headersArb(r.contentType) }).map((more) => ({ ...r, ...more })));

const reasonArb = fc.option(fc.string({ unit: fieldCharArb, maxLength: 40 }), { nil: undefined, freq: 4 });

const responseArb = fc
  .record({
    statusCode: fc.integer({ min: 100, max: 599 }),
    statusMessage: reasonArb,
    contentType: contentTypeArb,
    b: bodyArb,
    opts: optsArb,
    wire: wireArb,
    order: fc.integer(),
  })
  .chain((r) => headersArb(r.contentType).map((headers) => ({ ...r, headers })));

// ------------------------------------------------------------------------------ round-trip assertions

/** The body form the encoder may choose, given the size, the threshold and the content type. */
function checkForm(form: string, body: Buffer, contentType: string | undefined, o: Opts): void {
  if (body.length === 0) return assert.equal(form, "none");
  if (body.length > o.chunkThreshold) return assert.equal(form, "chunkedBase64");
  assert.ok(form === "text" || form === "base64", `inline form ${form}`);
  if (form === "text") {
    assert.ok(isTextualContentType(contentType), `<text> for a non-textual type ${String(contentType)}`);
    assert.ok(!body.includes(0x0d), "<text> for a body with CR (XML would fold it)");
  }
}

/** Chunks sent one by one over the wire, delivered in a shuffled order, reassembled byte-exact. */
function reassemble(body: DecodedBody, chunks: XmlElement[], o: Opts, wire: Wire, order: number, expectedLength: number): Buffer {
  if (body.kind === "inline") {
    assert.equal(chunks.length, 0, "an inline body has no chunks");
    return body.bytes;
  }
  assert.ok(chunks.length >= 1, "a chunked body has chunks");
  const size = clampChunkSize(o.chunkSize);
  const decoded: Chunk[] = chunks.map((c, i) => {
    const chunk = decodeChunk(wires[wire](c));
    assert.equal(chunk.streamId, body.streamId, "chunk streamId is the announced one");
    assert.equal(chunk.nr, i, "nr counts from 0");
    assert.equal(chunk.last, i === chunks.length - 1, "last on the final chunk only");
    assert.ok(chunk.bytes.length <= size, `chunk ${i} holds ${chunk.bytes.length} > ${size} bytes`);
    if (i < chunks.length - 1) assert.equal(chunk.bytes.length, size, "only the final chunk is short");
    return chunk;
  });
  // The bound is inclusive: a stream of exactly maxBytes is accepted.
  const assembler = new ChunkAssembler(expectedLength);
  const sequence = shuffled(decoded, order);
  sequence.forEach((chunk, i) => {
    assert.equal(assembler.complete, false, "complete before the last chunk arrived");
    assembler.add(chunk);
    if (i < sequence.length - 1) assert.equal(assembler.complete, false, "complete with chunks missing");
  });
  assert.ok(assembler.complete, "stream complete once every chunk is in");
  return assembler.take();
}

function describeBody(b: Buffer): string {
  return `${b.length} B ${b.subarray(0, 48).toString("hex")}${b.length > 48 ? "…" : ""}`;
}

describe("xep0332 fuzz: round trip", () => {
  it("random requests survive encode → XML text → parse → decode (+ shuffled chunks) byte-exact", () => {
    fc.assert(
      fc.property(requestArb, (r) => {
        const { method, resource, headers, b, opts, wire, order, contentType } = r;
        const enc = encodeRequest({ method, resource, headers, body: b.body }, encodeOptions(opts));
        checkForm(formOf(enc.payload), b.body, contentType, opts);
        const dec = decodeRequest(wires[wire](enc.payload));
        assert.equal(dec.method, method);
        assert.equal(dec.resource, resource);
        assert.equal(dec.version, "1.1");
        assert.deepEqual(dec.headers, headers);
        assert.equal(dec.maxChunkSize, opts.maxChunkSize === undefined ? undefined : clampChunkSize(opts.maxChunkSize));
        const bytes = reassemble(dec.body, enc.chunks, opts, wire, order, b.body.length);
        assert.ok(bytes.equals(b.body), `body differs: sent ${describeBody(b.body)}, got ${describeBody(bytes)}`);
      }),
      params(300),
    );
  });

  it("random responses survive encode → XML text → parse → decode (+ shuffled chunks) byte-exact", () => {
    fc.assert(
      fc.property(responseArb, (r) => {
        const { statusCode, statusMessage, headers, b, opts, wire, order, contentType } = r;
        const enc = encodeResponse(
          { statusCode, ...(statusMessage === undefined ? {} : { statusMessage }), headers, body: b.body },
          encodeOptions(opts),
        );
        checkForm(formOf(enc.payload), b.body, contentType, opts);
        const dec = decodeResponse(wires[wire](enc.payload));
        assert.equal(dec.statusCode, statusCode);
        assert.equal(dec.statusMessage, statusMessage ?? "");
        assert.deepEqual(dec.headers, headers);
        const bytes = reassemble(dec.body, enc.chunks, opts, wire, order, b.body.length);
        assert.ok(bytes.equals(b.body), `body differs: sent ${describeBody(b.body)}, got ${describeBody(bytes)}`);
      }),
      params(300),
    );
  });
});

// ----------------------------------------------------------------------------------- garbage handling

/** Runs a decoder: its result, or the CodecError it threw; anything else thrown fails the property. */
function attempt<T>(what: string, decode: () => T): T | CodecError {
  try {
    return decode();
  } catch (err) {
    if (err instanceof CodecError) return err;
    throw new Error(`${what} threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}, not a CodecError`, {
      cause: err,
    });
  }
}

const RESOURCE = /^(\*|\/[^\s\x00-\x1f\x7f]*)$/;
const REASON = /^[\t\x20-\x7e\x80-\xff]*$/;

function checkHeaders(headers: ReadonlyArray<readonly [string, string]>): void {
  for (const [n, v] of headers) assert.ok(isLegalHeader(n, v), `accepted an illegal header ${JSON.stringify([n, v])}`);
}

function checkBody(body: DecodedBody): void {
  if (body.kind === "inline") assert.ok(Buffer.isBuffer(body.bytes), "inline body is bytes");
  else assert.ok(typeof body.streamId === "string" && body.streamId.length > 0, "chunked body names its stream");
}

/** Whatever a decoder accepts must be something the gateway can safely write as HTTP. */
function checkAccepted(tree: XmlElement, label: string): void {
  const req = attempt(`decodeRequest(${label})`, () => decodeRequest(tree));
  if (!(req instanceof CodecError)) {
    assert.ok(isHttpMethod(req.method), `accepted method ${JSON.stringify(req.method)}`);
    assert.ok(RESOURCE.test(req.resource), `accepted resource ${JSON.stringify(req.resource)}`);
    if (req.maxChunkSize !== undefined)
      assert.ok(req.maxChunkSize >= MIN_CHUNK_SIZE && req.maxChunkSize <= MAX_CHUNK_SIZE, `maxChunkSize ${req.maxChunkSize}`);
    checkHeaders(req.headers);
    checkBody(req.body);
  }
  const resp = attempt(`decodeResponse(${label})`, () => decodeResponse(tree));
  if (!(resp instanceof CodecError)) {
    assert.ok(
      Number.isInteger(resp.statusCode) && resp.statusCode >= 100 && resp.statusCode <= 599,
      `accepted statusCode ${resp.statusCode}`,
    );
    assert.ok(REASON.test(resp.statusMessage), `accepted statusMessage ${JSON.stringify(resp.statusMessage)}`);
    checkHeaders(resp.headers);
    checkBody(resp.body);
  }
  const chunk = attempt(`decodeChunk(${label})`, () => decodeChunk(tree));
  if (!(chunk instanceof CodecError)) {
    assert.ok(Number.isInteger(chunk.nr) && chunk.nr >= 0 && chunk.nr <= 1_000_000, `accepted nr ${chunk.nr}`);
    assert.ok(chunk.streamId.length > 0, "accepted an empty streamId");
  }
  const data = attempt(`decodeData(${label})`, () => decodeData(tree));
  if (!(data instanceof CodecError)) checkBody(data);
  const headers = attempt(`decodeHeaders(${label})`, () => decodeHeaders(tree));
  if (!(headers instanceof CodecError)) checkHeaders(headers);
}

/** Every decoder on the tree, then on the tree after a trip over both wires (when it is XML at all). */
function checkEverywhere(tree: XmlElement): void {
  checkAccepted(tree, "tree");
  for (const wire of ["ltx", "codec"] as const) {
    let back: XmlElement;
    try {
      back = wires[wire](tree);
    } catch {
      continue; // not well-formed XML (a control character, say): it never reaches a decoder
    }
    checkAccepted(back, `${wire} wire`);
  }
}

const ELEMENT_NAMES = [
  "req",
  "request",
  "resp",
  "response",
  "headers",
  "header",
  "data",
  "text",
  "base64",
  "xml",
  "chunkedBase64",
  "chunk",
  "close",
  "sipub",
  "ibb",
  "jingle",
  "x",
  "a",
];
const ATTR_NAMES = [
  "xmlns",
  "method",
  "resource",
  "version",
  "statusCode",
  "statusMessage",
  "maxChunkSize",
  "name",
  "streamId",
  "nr",
  "last",
  "sipub",
  "ibb",
  "jingle",
];
const JUNK = [
  "",
  " ",
  "-1",
  "0",
  "abc",
  "1.5",
  "2e2",
  "99999",
  "999999999999",
  " 200",
  "200 ",
  "+200",
  "0x1F",
  "NaN",
  "Infinity",
  "２００",
  "099",
  "600",
  NS_HTTP,
  NS_SHIM,
  "urn:xmpp:http ",
  "1.1",
  "2.0",
  "11",
  "GET",
  "get",
  "CONNECT",
  "PROPFIND",
  "/",
  "*",
  "//",
  "/a b",
  "/a\u0000",
  "a",
  "true",
  "false",
  "1",
  "TRUE",
  "yes",
  "=",
  "é",
  "\t",
  "\n",
  "\r",
  "\r\n",
  "<",
  "&",
  "\u0000",
  "\uFFFF",
  "\uD800",
  "constructor",
  "__proto__",
  "toString",
  "AAAA",
  "AAA",
  "A===",
  "====",
  "@@@@",
  "QUJD\nREVG",
  "QUJD=REVG",
  "Zg==Zg==",
];
const junkArb = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...JUNK) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) });

/** A random tree under a root that looks like one of the codec's payloads, with random attributes. */
const randomTreeArb: fc.Arbitrary<XmlElement> = (() => {
  const { node } = fc.letrec<{ node: XmlNode; element: XmlElement }>((tie) => ({
    node: fc.oneof({ depthSize: "small", withCrossShrink: true }, junkArb, tie("element")),
    element: fc
      .record({
        name: fc.constantFrom(...ELEMENT_NAMES),
        attrs: fc.dictionary(fc.constantFrom(...ATTR_NAMES), fc.oneof(junkArb, fc.constantFrom(NS_HTTP, NS_SHIM)), { maxKeys: 4 }),
        children: fc.array(tie("node"), { maxLength: 4 }),
      })
      .map(({ name, attrs, children }) => ({ name, attrs: { ...attrs }, children })),
  }));
  return fc
    .record({
      name: fc.constantFrom("req", "request", "resp", "response", "chunk", "data", "headers"),
      base: fc.constantFrom<Record<string, string>>(
        { xmlns: NS_HTTP, method: "GET", resource: "/", version: "1.1" },
        { xmlns: NS_HTTP, statusCode: "200", version: "1.1" },
        { xmlns: NS_HTTP, streamId: "s", nr: "0", last: "true" },
        { xmlns: NS_SHIM },
        {},
      ),
      over: fc.dictionary(fc.constantFrom(...ATTR_NAMES), junkArb, { maxKeys: 3 }),
      drop: fc.subarray(ATTR_NAMES, { maxLength: 2 }),
      children: fc.array(node, { maxLength: 5 }),
    })
    .map(({ name, base, over, drop, children }) => {
      const attrs: Record<string, string> = { ...base, ...over };
      for (const d of drop) delete attrs[d];
      return { name, attrs, children };
    });
})();

type Mutation =
  | { op: "drop-element"; at: number }
  | { op: "duplicate-element"; at: number }
  | { op: "rename-element"; at: number; name: string }
  | { op: "drop-attr"; at: number; key: number }
  | { op: "set-attr"; at: number; name: string; value: string }
  | { op: "replace-text"; at: number; text: string }
  | { op: "add-header"; name: string; value: string }
  | { op: "status-code"; value: string }
  | { op: "wrap-children"; at: number; name: string };

const HOSTILE_HEADER_PARTS = ["\r", "\n", "\r\n", "\u0000", "\r\nSet-Cookie: stolen=1", " ", ":", "é", "中", "\u007f", "\u0085", ""];
const hostileArb = fc
  .tuple(
    fc.string({ unit: charsOf("Xab-1"), maxLength: 6 }),
    fc.constantFrom(...HOSTILE_HEADER_PARTS),
    fc.string({ unit: charsOf("Xab-1"), maxLength: 6 }),
  )
  .map(([a, bad, b]) => a + bad + b);

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant("drop-element" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("duplicate-element" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("rename-element" as const), at: fc.nat(), name: fc.constantFrom(...ELEMENT_NAMES) }),
  fc.record({ op: fc.constant("drop-attr" as const), at: fc.nat(), key: fc.nat() }),
  fc.record({ op: fc.constant("set-attr" as const), at: fc.nat(), name: fc.constantFrom(...ATTR_NAMES), value: junkArb }),
  fc.record({ op: fc.constant("replace-text" as const), at: fc.nat(), text: fc.oneof(junkArb, hostileArb) }),
  fc.record({ op: fc.constant("add-header" as const), name: fc.oneof(hostileArb, tokenArb), value: fc.oneof(hostileArb, fieldValueArb) }),
  fc.record({ op: fc.constant("status-code" as const), value: junkArb }),
  fc.record({ op: fc.constant("wrap-children" as const), at: fc.nat(), name: fc.constantFrom(...ELEMENT_NAMES) }),
);

function clone(node: XmlElement): XmlElement {
  return { name: node.name, attrs: { ...node.attrs }, children: node.children.map((c) => (typeof c === "string" ? c : clone(c))) };
}

function elementsOf(root: XmlElement): Array<{ node: XmlElement; parent: XmlElement | undefined }> {
  const out: Array<{ node: XmlElement; parent: XmlElement | undefined }> = [];
  const walk = (node: XmlElement, parent: XmlElement | undefined): void => {
    out.push({ node, parent });
    for (const c of childElements(node)) walk(c, node);
  };
  walk(root, undefined);
  return out;
}

function mutate(root: XmlElement, mutations: readonly Mutation[]): XmlElement {
  const tree = clone(root);
  for (const m of mutations) {
    const all = elementsOf(tree);
    const pick = "at" in m ? (all[m.at % all.length] as { node: XmlElement; parent: XmlElement | undefined }) : undefined;
    switch (m.op) {
      case "drop-element":
      case "duplicate-element": {
        if (!pick?.parent) break;
        const i = pick.parent.children.indexOf(pick.node);
        if (m.op === "drop-element") pick.parent.children.splice(i, 1);
        else pick.parent.children.splice(i, 0, clone(pick.node));
        break;
      }
      case "rename-element":
        if (pick) pick.node.name = m.name;
        break;
      case "drop-attr": {
        const keys = pick ? Object.keys(pick.node.attrs) : [];
        if (pick && keys.length > 0) delete pick.node.attrs[keys[m.key % keys.length] as string];
        break;
      }
      case "set-attr":
        if (pick) pick.node.attrs[m.name] = m.value;
        break;
      case "replace-text":
        if (pick) pick.node.children = [...childElements(pick.node), m.text];
        break;
      case "add-header": {
        let headers = tree.children.find((c): c is XmlElement => typeof c !== "string" && c.name === "headers");
        if (!headers) tree.children.unshift((headers = el("headers", { xmlns: NS_SHIM })));
        headers.children.push(el("header", { name: m.name }, m.value));
        break;
      }
      case "status-code":
        tree.attrs.statusCode = m.value;
        break;
      case "wrap-children":
        if (pick) pick.node.children = [el(m.name, {}, ...pick.node.children)];
        break;
    }
  }
  return tree;
}

/** A valid payload (and its chunks) to mutate: a random request or response with a small body. */
const validPayloadArb: fc.Arbitrary<XmlElement[]> = fc.oneof(
  requestArb.map((r) => {
    const enc = encodeRequest(
      { method: r.method, resource: r.resource, headers: r.headers, body: r.b.body.subarray(0, 2000) },
      encodeOptions({ ...r.opts, chunkThreshold: r.opts.chunkThreshold % 1500 }),
    );
    return [enc.payload, ...enc.chunks.slice(0, 3)];
  }),
  responseArb.map((r) => {
    const msg = {
      statusCode: r.statusCode,
      ...(r.statusMessage === undefined ? {} : { statusMessage: r.statusMessage }),
      headers: r.headers,
      body: r.b.body.subarray(0, 2000),
    };
    const enc = encodeResponse(msg, encodeOptions({ ...r.opts, chunkThreshold: r.opts.chunkThreshold % 1500 }));
    return [enc.payload, ...enc.chunks.slice(0, 3)];
  }),
);

describe("xep0332 fuzz: garbage in, CodecError out", () => {
  it("random XML trees: the decoders return legal HTTP or throw a CodecError", () => {
    fc.assert(
      fc.property(randomTreeArb, (tree) => checkEverywhere(tree)),
      params(1000),
    );
  });

  it("mutated valid payloads (elements dropped, duplicated, renamed; attributes, text, headers and statusCode broken)", () => {
    fc.assert(
      fc.property(validPayloadArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), fc.nat(), (payloads, mutations, which) => {
        checkEverywhere(mutate(payloads[which % payloads.length] as XmlElement, mutations));
      }),
      params(800),
    );
  });

  it("statusCode is a three-digit 1xx-5xx or refused, whatever the attribute holds", () => {
    const statusArb = fc.oneof(
      junkArb,
      fc.integer({ min: -1000, max: 100_000 }).map(String),
      fc.string({ unit: charsOf("0123456789.-+eE x"), maxLength: 6 }),
    );
    fc.assert(
      fc.property(statusArb, (statusCode) => {
        const tree = el("resp", { xmlns: NS_HTTP, version: "1.1", statusCode });
        const got = attempt("decodeResponse", () => decodeResponse(tree));
        if (/^[1-5][0-9][0-9]$/.test(statusCode))
          assert.ok(!(got instanceof CodecError) && got.statusCode === Number(statusCode), `refused ${statusCode}`);
        else assert.ok(got instanceof CodecError && got.reason === "malformed", `accepted statusCode ${JSON.stringify(statusCode)}`);
      }),
      params(500),
    );
  });

  it("elements nested thousands deep (an <xml> body, <headers>, <data>) end in a result or a CodecError", () => {
    const shapeArb = fc.record({
      depth: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1000, max: 30_000 })),
      where: fc.constantFrom("xml", "headers", "data", "text", "root"),
      leaf: fc.oneof(fc.constant(""), junkArb),
    });
    fc.assert(
      fc.property(shapeArb, ({ depth, where, leaf }) => {
        let inner: XmlNode = leaf;
        for (let i = 0; i < depth; i++) inner = el(i % 2 ? "a" : "b", i % 3 ? {} : { k: "v" }, inner);
        const chain = inner;
        const wrap = (child: XmlNode): XmlElement[] => {
          switch (where) {
            case "xml":
              return [el("data", {}, el("xml", {}, child))];
            case "headers":
              return [el("headers", { xmlns: NS_SHIM }, child)];
            case "data":
              return [el("data", {}, child)];
            case "text":
              return [el("data", {}, el("text", {}, child))];
            default:
              return typeof child === "string" ? [] : [child];
          }
        };
        const resp = el("resp", { xmlns: NS_HTTP, version: "1.1", statusCode: "200" }, ...wrap(chain));
        const req = el("req", { xmlns: NS_HTTP, version: "1.1", method: "POST", resource: "/" }, ...wrap(chain));
        attempt("decodeResponse(deep)", () => decodeResponse(resp));
        attempt("decodeRequest(deep)", () => decodeRequest(req));
        // From real XML text too, as a device would send it (when the leaf is XML at all).
        let parsed: XmlElement;
        try {
          parsed = parseXml(serialize(resp));
        } catch {
          return;
        }
        attempt("decodeResponse(deep, parsed)", () => decodeResponse(parsed));
      }),
      params(40),
    );
  });

  it("regression: an <xml> body nested 20000 deep decodes to its XML, not a stack-overflow RangeError", () => {
    const depth = 20_000;
    const text = `<resp xmlns='${NS_HTTP}' version='1.1' statusCode='200'><data><xml>${"<a>".repeat(depth)}x${"</a>".repeat(depth)}</xml></data></resp>`;
    const dec = decodeResponse(parseXml(text));
    assert.equal(dec.body.kind, "inline");
    assert.equal((dec.body as { bytes: Buffer }).bytes.toString("utf8"), `${"<a>".repeat(depth)}x${"</a>".repeat(depth)}`);
  });

  it("thousands of headers: all kept in order, or one illegal among them refused as bad-header", () => {
    const hostileArb = fc.option(fc.tuple(fc.nat(), fc.constantFrom("name", "value"), fc.constantFrom("\r", "\n", "\u0000", "\r\n", " ")), {
      nil: undefined,
    });
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 5000 }), hostileArb, wireArb, (count, bad, wire) => {
        const headers: Array<[string, string]> = Array.from({ length: count }, (_, i) => [
          i % 7 === 0 ? "Set-Cookie" : `X-H${i}`,
          `v${i}; path=/`,
        ]);
        if (bad) {
          const [at, part, hostile] = bad;
          const h = headers[at % count] as [string, string];
          if (part === "name") h[0] = `X${hostile}Y`;
          else h[1] = `a${hostile === " " ? "\u0000" : hostile}b`;
        }
        const container = el("headers", { xmlns: NS_SHIM }, ...headers.map(([n, v]) => el("header", { name: n }, v)));
        const tree = el("resp", { xmlns: NS_HTTP, version: "1.1", statusCode: "200" }, container);
        const sameList = (got: ReadonlyArray<readonly [string, string]>) =>
          got.length === count && got.every(([n, v], i) => n === headers[i]?.[0] && v === headers[i]?.[1]);
        const list = attempt("decodeHeaders", () =>
          decodeHeaders(bad ? container : (wires[wire](tree).children.find((c): c is XmlElement => typeof c !== "string") as XmlElement)),
        );
        if (bad) assert.ok(list instanceof CodecError && list.reason === "bad-header", "an illegal header among thousands was accepted");
        else assert.ok(!(list instanceof CodecError) && sameList(list), "headers lost or reordered");
        // A whole response may be refused for its size too, but never comes back with a list cut or reordered.
        const resp = attempt("decodeResponse", () => decodeResponse(tree));
        if (bad) assert.ok(resp instanceof CodecError, "a response with an illegal header was accepted");
        else if (!(resp instanceof CodecError)) assert.ok(sameList(resp.headers), "response headers lost or reordered");
      }),
      params(20),
    );
  });
});

// ----------------------------------------------------------------------------------------- chunk streams

type ChunkEdit =
  | { op: "duplicate"; at: number }
  | { op: "drop"; at: number }
  | { op: "nr"; at: number; nr: string }
  | { op: "last"; at: number; last: string | undefined }
  | { op: "text"; at: number; text: string }
  | { op: "stream"; at: number; streamId: string | undefined }
  | { op: "xmlns"; at: number };

const NR_JUNK = ["-1", "1e3", "01", "00", "1000000", "1000001", "9999999", "99999999", "4294967296", "", " 1", "1.0", "0x1", "NaN"];
const chunkEditArb: fc.Arbitrary<ChunkEdit> = fc.oneof(
  fc.record({ op: fc.constant("duplicate" as const), at: fc.nat() }),
  fc.record({ op: fc.constant("drop" as const), at: fc.nat() }),
  fc.record({
    op: fc.constant("nr" as const),
    at: fc.nat(),
    nr: fc.oneof(fc.constantFrom(...NR_JUNK), fc.integer({ min: -5, max: 40 }).map(String)),
  }),
  fc.record({
    op: fc.constant("last" as const),
    at: fc.nat(),
    last: fc.constantFrom(undefined, "true", "false", "1", "0", "TRUE", "yes", ""),
  }),
  fc.record({
    op: fc.constant("text" as const),
    at: fc.nat(),
    text: fc.constantFrom("", "AAA", "A===", "@@@@", "QUJD\nREVG", "QUJD=", "Zg==Zg==", "QUJD REVG", "\u0000"),
  }),
  fc.record({ op: fc.constant("stream" as const), at: fc.nat(), streamId: fc.constantFrom(undefined, "", "other", "S") }),
  fc.record({ op: fc.constant("xmlns" as const), at: fc.nat() }),
);

function editChunks(chunks: XmlElement[], edits: readonly ChunkEdit[]): XmlElement[] {
  const out = chunks.map(clone);
  for (const e of edits) {
    if (out.length === 0) break;
    const i = e.at % out.length;
    const c = out[i] as XmlElement;
    switch (e.op) {
      case "duplicate":
        out.splice(i, 0, clone(c));
        break;
      case "drop":
        out.splice(i, 1);
        break;
      case "nr":
        c.attrs.nr = e.nr;
        break;
      case "last":
        c.attrs.last = e.last;
        break;
      case "text":
        c.children = [e.text];
        break;
      case "stream":
        c.attrs.streamId = e.streamId;
        break;
      case "xmlns":
        c.attrs.xmlns = "urn:example:other";
        break;
    }
  }
  return out;
}

describe("xep0332 fuzz: chunk streams into the assembler", () => {
  it("random chunk sequences: only CodecErrors, refusals change nothing, and a complete stream is its chunks in nr order", () => {
    const streamArb = fc.record({
      body: fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
        fc.tuple(fc.integer({ min: 0, max: 6000 }), fc.integer()).map(([n, s]) => seededBytes(s, n)),
      ),
      chunkSize: fc.integer({ min: MIN_CHUNK_SIZE, max: 2048 }),
      edits: fc.array(chunkEditArb, { maxLength: 5 }),
      order: fc.integer(),
      maxBytesSlack: fc.integer({ min: -300, max: 300 }),
      wire: wireArb,
    });
    fc.assert(
      fc.property(streamArb, ({ body, chunkSize, edits, order, maxBytesSlack, wire }) => {
        const clean = encodeResponse(
          { statusCode: 200, headers: [], body },
          { chunkThreshold: 0, chunkSize, newStreamId: () => "S" },
        ).chunks;
        const sequence = shuffled(editChunks(clean, edits), order);
        const maxBytes = Math.max(0, body.length + maxBytesSlack);
        const assembler = new ChunkAssembler(maxBytes);
        const accepted = new Map<number, Buffer>();
        let failed = false;
        for (const node of sequence) {
          const chunk = attempt("decodeChunk", () => decodeChunk(wires[wire](node)));
          if (chunk instanceof CodecError) continue; // the receiver drops it (and fails the stream)
          if (chunk.streamId !== "S") continue; // another stream's business
          const before = { bytes: assembler.bufferedBytes, complete: assembler.complete };
          const added = attempt("ChunkAssembler.add", () => assembler.add(chunk));
          if (added instanceof CodecError) {
            failed = true;
            assert.deepEqual(
              { bytes: assembler.bufferedBytes, complete: assembler.complete },
              before,
              "a refused chunk changed the assembler",
            );
            continue;
          }
          assert.ok(!before.complete, "a chunk was accepted after the stream was complete");
          accepted.set(chunk.nr, chunk.bytes);
        }
        const total = [...accepted.values()].reduce((n, b) => n + b.length, 0);
        assert.equal(assembler.bufferedBytes, total, "bufferedBytes is the sum of the accepted chunks");
        assert.ok(assembler.bufferedBytes <= maxBytes, "buffered more than maxBytes");
        if (!assembler.complete) {
          assert.throws(() => assembler.take(), "take() before completion must not hand out a partial body");
          return;
        }
        const nrs = [...accepted.keys()].sort((a, b) => a - b);
        assert.deepEqual(
          nrs,
          nrs.map((_, i) => i),
          "complete with a gap in nr",
        );
        const whole = assembler.take();
        assert.ok(whole.equals(Buffer.concat(nrs.map((n) => accepted.get(n) as Buffer))), "take() is not the chunks in nr order");
        // A stream nobody tampered with, delivered whole within the bound, is the body itself.
        if (edits.length === 0 && !failed) assert.ok(whole.equals(body), "an untouched stream came back different");
      }),
      params(600),
    );
  });

  it("an untouched stream in any order within its bound always completes, byte-exact", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20_000 }),
        fc.integer(),
        fc.integer({ min: 1, max: 70_000 }),
        fc.integer(),
        wireArb,
        (n, seed, chunkSize, order, wire) => {
          const body = seededBytes(seed, n);
          const chunks = encodeRequest(
            { method: "PUT", resource: "/", headers: [], body },
            { chunkThreshold: 0, chunkSize, newStreamId: () => "S" },
          ).chunks;
          const assembler = new ChunkAssembler(n);
          for (const c of shuffled(chunks, order)) assembler.add(decodeChunk(wires[wire](c)));
          assert.ok(assembler.complete, "incomplete");
          assert.ok(assembler.take().equals(body), "bytes differ");
          // One byte less of room and the same stream is refused as too large.
          const tight = new ChunkAssembler(n - 1);
          const errs = chunks.map((c) => attempt("add", () => tight.add(decodeChunk(c)))).filter((r) => r instanceof CodecError);
          assert.ok(errs.length >= 1 && errs.every((e) => e.reason === "too-large"), "a stream over maxBytes was accepted");
        },
      ),
      params(200),
    );
  });
});

describe("xep0332 fuzz: <text> bodies", () => {
  // Text that survives XML goes as <text>, not base64, and the characters on the wire are the body's own.
  it("a textual body without CR goes as <text> holding exactly its characters, over the ltx wire", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...XML_SAFE_TEXT_ATOMS), { minLength: 1, maxLength: 200 }),
        fc.constantFrom(...TEXT_TYPES),
        (atoms, contentType) => {
          const text = atoms.join("");
          const enc = encodeResponse(
            { statusCode: 200, headers: [["Content-Type", contentType]], body: Buffer.from(text, "utf8") },
            { chunkThreshold: 1 << 20, chunkSize: 256, newStreamId: () => "s" },
          );
          assert.equal(formOf(enc.payload), "text");
          const back = overLtxWire(enc.payload);
          const data = childElements(back).find((c) => c.name === "data") as XmlElement;
          assert.equal(textOf(childElements(data)[0] as XmlElement), text);
        },
      ),
      params(100),
    );
  });
});
