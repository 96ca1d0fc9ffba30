/**
 * XEP-0332 codec: encode → serialize → ltx.parse → decode round trips of requests and responses, body-form
 * selection (text / base64 / chunkedBase64), chunking and escaping.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  ChunkAssembler,
  HTTP_METHODS,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  NS_HTTP,
  NS_SHIM,
  childElements,
  decodeChunk,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  findChild,
  serialize,
  textOf,
  type DecodedBody,
  type EncodeOptions,
  type HeaderList,
  type HttpMethod,
  type XmlElement,
} from "../../lib/xep0332/index.js";
import { parseXml, formOf } from "../helpers/xml.js";

// ---------------------------------------------------------------------------------------------- helpers

/** What the peer sees: the element as XML text, parsed again. */
function overTheWire(node: XmlElement): XmlElement {
  return parseXml(serialize(node));
}

function streamIds(): () => string {
  let n = 0;
  return () => `stream-${++n}`;
}

function opts(over: Partial<EncodeOptions> = {}): EncodeOptions {
  return { chunkThreshold: 65536, chunkSize: 32768, newStreamId: streamIds(), ...over };
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Seeded shuffle (mulberry32), so a failing order is reproducible. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let s = seed >>> 0;
  const rnd = (): number => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** The body bytes of a decoded message: inline bytes, or the chunks (sent over the wire) reassembled. */
function bodyBytes(body: DecodedBody, chunks: XmlElement[], seed = 1): Buffer {
  if (body.kind === "inline") return body.bytes;
  const assembler = new ChunkAssembler(64 * 1024 * 1024);
  for (const c of shuffled(chunks, seed)) {
    const chunk = decodeChunk(overTheWire(c));
    assert.equal(chunk.streamId, body.streamId);
    assembler.add(chunk);
  }
  assert.ok(assembler.complete, "all chunks arrived");
  return assembler.take();
}

function sha(b: Buffer): string {
  return createHash("sha256").update(b).digest("hex");
}

function roundTripRequest(method: HttpMethod, resource: string, headers: HeaderList, body: Buffer, o = opts()) {
  const enc = encodeRequest({ method, resource, headers, body }, o);
  const dec = decodeRequest(overTheWire(enc.payload));
  return { enc, dec, bytes: bodyBytes(dec.body, enc.chunks) };
}

function roundTripResponse(statusCode: number, statusMessage: string | undefined, headers: HeaderList, body: Buffer, o = opts()) {
  const enc = encodeResponse({ statusCode, ...(statusMessage === undefined ? {} : { statusMessage }), headers, body }, o);
  const dec = decodeResponse(overTheWire(enc.payload));
  return { enc, dec, bytes: bodyBytes(dec.body, enc.chunks) };
}

// ------------------------------------------------------------------------------------------------ tests

describe("xep0332 request round trip", () => {
  for (const method of HTTP_METHODS) {
    it(`${method} keeps method, resource, headers and body`, () => {
      const hasBody = method === "POST" || method === "PUT" || method === "PATCH";
      const body = hasBody ? Buffer.from(`{"method":"${method}","n":1}`) : Buffer.alloc(0);
      const headers: HeaderList = hasBody
        ? [
            ["Host", "dev-17"],
            ["Content-Type", "application/json"],
          ]
        : [["Host", "dev-17"]];
      const { enc, dec, bytes } = roundTripRequest(method, `/devices/x/${method.toLowerCase()}?a=1&b=two`, headers, body);
      assert.equal(enc.payload.name, "req");
      assert.equal(enc.payload.attrs.method, method);
      assert.equal(dec.method, method);
      assert.equal(dec.resource, `/devices/x/${method.toLowerCase()}?a=1&b=two`);
      assert.equal(dec.version, "1.1");
      assert.deepEqual(dec.headers, headers);
      assert.deepEqual(bytes, body);
      assert.equal(formOf(enc.payload), hasBody ? "text" : "none");
    });
  }

  it("keeps a query string with reserved and XML-special characters verbatim", () => {
    const resource = `/TEMPERATURE/?unit=%C2%B0C&q="a+b"&x='y'&lt=<3>&amp;=&&path=/x/../y#frag`;
    const { enc, dec } = roundTripRequest("GET", resource, [], Buffer.alloc(0));
    assert.equal(dec.resource, resource);
    assert.ok(!serialize(enc.payload).includes("<3>"), "< and > escaped inside the attribute");
  });

  it("carries the '*' resource of OPTIONS", () => {
    const { dec } = roundTripRequest("OPTIONS", "*", [["Host", "device"]], Buffer.alloc(0));
    assert.equal(dec.method, "OPTIONS");
    assert.equal(dec.resource, "*");
  });

  it("keeps repeated header names as separate entries, in order, with their case", () => {
    const headers: HeaderList = [
      ["Accept", "text/html"],
      ["X-Trace", "1"],
      ["accept", "application/json"],
      ["Set-Cookie", "a=1; Path=/"],
      ["ACCEPT", "*/*"],
      ["Set-Cookie", "b=2; HttpOnly"],
    ];
    const { enc, dec } = roundTripRequest("GET", "/", headers, Buffer.alloc(0));
    assert.deepEqual(dec.headers, headers);
    const container = findChild(enc.payload, "headers");
    assert.ok(container);
    assert.equal(container.attrs.xmlns, NS_SHIM);
    assert.deepEqual(
      childElements(container).map((h) => h.attrs.name),
      ["Accept", "X-Trace", "accept", "Set-Cookie", "ACCEPT", "Set-Cookie"],
    );
  });

  it("keeps empty header values, inner and outer whitespace, tabs and obs-text", () => {
    const headers: HeaderList = [
      ["X-Empty", ""],
      ["X-Spaces", "  padded value  "],
      ["X-Tab", "a\tb"],
      ["X-Latin1", "caf\u00e9 \u00ff"],
    ];
    const { dec } = roundTripRequest("GET", "/", headers, Buffer.alloc(0));
    assert.deepEqual(dec.headers, headers);
  });

  it("sends an empty body as no <data> element and decodes it as an empty Buffer", () => {
    const { enc, dec, bytes } = roundTripRequest("POST", "/x", [["Content-Type", "text/plain"]], Buffer.alloc(0));
    assert.equal(findChild(enc.payload, "data"), undefined);
    assert.deepEqual(dec.body, { kind: "inline", form: "none", bytes: Buffer.alloc(0) });
    assert.equal(bytes.length, 0);
    assert.ok(Buffer.isBuffer(bytes));
  });

  it("sends no <headers> element when there are no headers, and decodes none", () => {
    const { enc, dec } = roundTripRequest("GET", "/", [], Buffer.alloc(0));
    assert.equal(findChild(enc.payload, "headers"), undefined);
    assert.deepEqual(dec.headers, []);
  });

  it("marks encoded requests sipub/ibb/jingle='false', version 1.1, in urn:xmpp:http", () => {
    const { payload } = encodeRequest({ method: "GET", resource: "/", headers: [], body: Buffer.alloc(0) }, opts());
    assert.equal(payload.attrs.xmlns, NS_HTTP);
    assert.equal(payload.attrs.version, "1.1");
    assert.equal(payload.attrs.sipub, "false");
    assert.equal(payload.attrs.ibb, "false");
    assert.equal(payload.attrs.jingle, "false");
    const reparsed = overTheWire(payload);
    assert.equal(reparsed.attrs.sipub, "false");
    assert.equal(reparsed.attrs.ibb, "false");
    assert.equal(reparsed.attrs.jingle, "false");
  });

  it("announces maxChunkSize clamped to 256..65536 and decodes it", () => {
    const cases: Array<[number | undefined, string | undefined]> = [
      [undefined, undefined],
      [4096, "4096"],
      [4096.9, "4096"],
      [1, String(MIN_CHUNK_SIZE)],
      [0, String(MIN_CHUNK_SIZE)],
      [256, "256"],
      [65536, "65536"],
      [10_000_000, String(MAX_CHUNK_SIZE)],
    ];
    for (const [asked, wire] of cases) {
      const o = { ...opts(), ...(asked === undefined ? {} : { maxChunkSize: asked }) };
      const { payload } = encodeRequest({ method: "GET", resource: "/", headers: [], body: Buffer.alloc(0) }, o);
      assert.equal(payload.attrs.maxChunkSize, wire, `maxChunkSize ${asked}`);
      const dec = decodeRequest(overTheWire(payload));
      assert.equal(dec.maxChunkSize, wire === undefined ? undefined : Number(wire));
      assert.equal("maxChunkSize" in dec, wire !== undefined, "absent, not undefined-valued, when not announced");
    }
  });
});

describe("xep0332 response round trip", () => {
  const statuses: Array<[number, string | undefined]> = [
    [100, "Continue"],
    [200, "OK"],
    [201, "Created"],
    [204, "No Content"],
    [301, "Moved Permanently"],
    [404, "Not Found"],
    [418, "I'm a teapot"],
    [500, "Internal Server Error"],
    [503, undefined],
    [599, "Network Connect Timeout Error"],
  ];
  for (const [code, message] of statuses) {
    it(`${code} ${message ?? "(no message)"} keeps status, message, headers, body`, () => {
      const body = code === 204 || code === 100 ? Buffer.alloc(0) : Buffer.from(`status ${code}`);
      const headers: HeaderList = [
        ["Content-Type", "text/plain; charset=utf-8"],
        ["X-Status", String(code)],
      ];
      const { enc, dec, bytes } = roundTripResponse(code, message, headers, body);
      assert.equal(enc.payload.name, "resp");
      assert.equal(enc.payload.attrs.statusCode, String(code));
      assert.equal(dec.statusCode, code);
      assert.equal(dec.statusMessage, message ?? "");
      assert.deepEqual(dec.headers, headers);
      assert.deepEqual(bytes, body);
    });
  }

  it("omits an empty statusMessage attribute and decodes it as ''", () => {
    const { enc, dec } = roundTripResponse(200, "", [], Buffer.alloc(0));
    assert.equal("statusMessage" in enc.payload.attrs, false);
    assert.equal(dec.statusMessage, "");
  });
});

describe("xep0332 body forms", () => {
  const unicodeTexts = [
    "Grüße, 世界! Température 21.5 °C — ok",
    "emoji 🌡️🚀 and ZWJ family 👩‍👩‍👧‍👦 and flags 🇫🇷",
    "combining: e\u0301 a\u0308 n\u0303 (NFD) vs é ä ñ (NFC)",
    '{"msg":"naïve café ☕","emoji":"🙂","esc":"\\u00e9"}',
    "<p>&amp; ]]> \"double\" 'single' <![CDATA[x]]></p>",
    "tabs\tand\nnewlines\n\n and trailing spaces   ",
    "   \n\t  ",
    "\u{10FFFF} supplementary-plane max and \uFFFD replacement char and \u2028 line separator",
  ];
  const textualTypes = [
    "text/plain",
    "application/json",
    "application/problem+json",
    "text/html;charset=utf-8",
    'Text/Plain; charset="UTF-8"',
  ];
  for (const contentType of textualTypes) {
    it(`sends unicode text as <text> under ${contentType}, byte-exact`, () => {
      for (const s of unicodeTexts) {
        const body = Buffer.from(s, "utf8");
        const { enc, dec, bytes } = roundTripResponse(200, "OK", [["Content-Type", contentType]], body);
        assert.equal(formOf(enc.payload), "text", JSON.stringify(s));
        const textEl = childElements(findChild(enc.payload, "data") as XmlElement)[0] as XmlElement;
        assert.equal(textOf(textEl), s);
        assert.equal(dec.body.kind === "inline" && dec.body.form, "text");
        assert.deepEqual(bytes, body, JSON.stringify(s));
      }
    });
  }

  it("preserves a UTF-8 BOM in a <text> body", () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("hello, BOM", "utf8")]);
    const { enc, bytes } = roundTripResponse(200, "OK", [["Content-Type", "text/plain; charset=utf-8"]], body);
    assert.equal(formOf(enc.payload), "text");
    assert.deepEqual(bytes.subarray(0, 3), Buffer.from([0xef, 0xbb, 0xbf]));
    assert.deepEqual(bytes, body);
  });

  it("sends text containing CR or CRLF as <base64> (XML would fold them), byte-exact", () => {
    for (const s of ["line1\r\nline2\r\n", "old mac\rline", "\r", "a\r\n\r\nb", "trailing CR\r"]) {
      const body = Buffer.from(s, "utf8");
      const { enc, bytes } = roundTripRequest("POST", "/t", [["Content-Type", "text/plain"]], body);
      assert.equal(formOf(enc.payload), "base64", JSON.stringify(s));
      assert.deepEqual(bytes, body);
    }
  });

  it("sends text with characters XML 1.0 forbids as <base64>", () => {
    for (const s of ["a\u0001b", "x\uFFFEy", "\u0000", "ansi \u001b[0m reset", "\uFFFF", "vt\u000Bff\u000C"]) {
      const body = Buffer.from(s, "utf8");
      const { enc, bytes } = roundTripResponse(200, "OK", [["Content-Type", "application/json"]], body);
      assert.equal(formOf(enc.payload), "base64", JSON.stringify(s));
      assert.deepEqual(bytes, body);
    }
  });

  it("sends bytes that are not valid UTF-8 under text/plain as <base64>", () => {
    const invalid = [
      [0xff],
      [0x61, 0xc3, 0x28, 0x62], // bad continuation
      [0xc0, 0xaf], // overlong '/'
      [0xed, 0xa0, 0x80], // UTF-16 surrogate encoded
      [0x41, 0xe2, 0x82], // truncated sequence
      [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    ];
    for (const bytesIn of invalid) {
      const body = Buffer.from(bytesIn);
      const { enc, bytes } = roundTripResponse(200, "OK", [["Content-Type", "text/plain"]], body);
      assert.equal(formOf(enc.payload), "base64", body.toString("hex"));
      assert.deepEqual(bytes, body);
    }
  });

  it("sends charset=iso-8859-1 bodies as <base64>, even plain ASCII", () => {
    for (const body of [Buffer.from("hello"), Buffer.from([0x63, 0x61, 0x66, 0xe9])]) {
      const { enc, bytes } = roundTripResponse(200, "OK", [["Content-Type", "text/plain; charset=iso-8859-1"]], body);
      assert.equal(formOf(enc.payload), "base64");
      assert.deepEqual(bytes, body);
    }
  });

  it("sends random binary as <base64>, byte-exact", () => {
    const body = randomBytes(4096);
    const { enc, bytes } = roundTripResponse(200, "OK", [["Content-Type", "application/octet-stream"]], body);
    assert.equal(formOf(enc.payload), "base64");
    assert.deepEqual(bytes, body);
  });

  it("sends image/png as <base64> even when its bytes look like text", () => {
    const body = Buffer.from("this is not really a png but it is ASCII");
    const { enc, bytes } = roundTripResponse(200, "OK", [["Content-Type", "image/png"]], body);
    assert.equal(formOf(enc.payload), "base64");
    assert.deepEqual(bytes, body);
  });

  it("sends a body without Content-Type as <base64>", () => {
    const body = Buffer.from("plain words");
    const { enc, bytes } = roundTripRequest("PUT", "/x", [["Host", "d"]], body);
    assert.equal(formOf(enc.payload), "base64");
    assert.deepEqual(bytes, body);
  });

  it("finds the Content-Type header case-insensitively", () => {
    const { enc } = roundTripRequest("PUT", "/x", [["content-TYPE", "text/plain"]], Buffer.from("words"));
    assert.equal(formOf(enc.payload), "text");
  });
});

describe("xep0332 chunking", () => {
  it("keeps a body exactly at the threshold inline and chunks threshold+1", () => {
    let calls = 0;
    const o = opts({ chunkThreshold: 1000, chunkSize: 300, newStreamId: () => `s${++calls}` });
    const atLimit = randomBytes(1000);
    const inline = encodeResponse({ statusCode: 200, headers: [], body: atLimit }, o);
    assert.equal(formOf(inline.payload), "base64");
    assert.equal(inline.chunks.length, 0);
    assert.equal(inline.streamId, undefined);
    assert.equal(calls, 0, "no stream id drawn for an inline body");

    const over = randomBytes(1001);
    const chunked = encodeResponse({ statusCode: 200, headers: [], body: over }, o);
    assert.equal(formOf(chunked.payload), "chunkedBase64");
    assert.equal(calls, 1);
    assert.equal(chunked.streamId, "s1");
    const marker = childElements(findChild(chunked.payload, "data") as XmlElement)[0] as XmlElement;
    assert.equal(marker.attrs.streamId, "s1");
    assert.equal(marker.children.length, 0);
    assert.equal(chunked.chunks.length, 4); // 300 + 300 + 300 + 101
    const dec = decodeResponse(overTheWire(chunked.payload));
    assert.deepEqual(dec.body, { kind: "chunked", streamId: "s1" });
    assert.deepEqual(bodyBytes(dec.body, chunked.chunks), over);
  });

  it("applies the threshold to text bodies too", () => {
    const body = Buffer.from("é".repeat(600)); // 1200 bytes
    const enc = encodeRequest(
      { method: "POST", resource: "/", headers: [["Content-Type", "text/plain"]], body },
      opts({ chunkThreshold: 1199 }),
    );
    assert.equal(formOf(enc.payload), "chunkedBase64");
    assert.equal(enc.payload.attrs.maxChunkSize, undefined);
  });

  it("splits a 1 MiB random body into self-contained, numbered, bounded chunks", () => {
    const body = randomBytes(1024 * 1024);
    const chunkSize = 32768;
    const enc = encodeRequest(
      { method: "POST", resource: "/upload", headers: [["Content-Type", "application/octet-stream"]], body },
      opts({ chunkSize }),
    );
    assert.equal(enc.chunks.length, 32);
    const pieces: Buffer[] = [];
    enc.chunks.forEach((chunk, i) => {
      assert.equal(chunk.name, "chunk");
      assert.equal(chunk.attrs.xmlns, NS_HTTP);
      assert.equal(chunk.attrs.streamId, enc.streamId);
      assert.equal(chunk.attrs.nr, String(i));
      assert.equal(chunk.attrs.last, i === enc.chunks.length - 1 ? "true" : undefined);
      const text = textOf(chunk);
      assert.match(text, B64, `chunk ${i} is valid base64 on its own`);
      const raw = Buffer.from(text, "base64");
      assert.ok(raw.length <= chunkSize && raw.length > 0);
      assert.equal(raw.length, chunkSize);
      assert.ok(serialize(chunk).length < 64 * 1024, "stanza well below server limits");
      pieces.push(raw);
    });
    assert.deepEqual(Buffer.concat(pieces), body);
  });

  it("puts the remainder in a short last chunk, and only the last has last='true'", () => {
    const body = randomBytes(1024 * 1024 + 1);
    const enc = encodeResponse({ statusCode: 200, headers: [], body }, opts({ chunkSize: 32768 }));
    assert.equal(enc.chunks.length, 33);
    const lasts = enc.chunks.filter((c) => c.attrs.last !== undefined);
    assert.equal(lasts.length, 1);
    assert.equal(lasts[0], enc.chunks[32]);
    assert.equal(lasts[0]?.attrs.last, "true");
    assert.equal(Buffer.from(textOf(enc.chunks[32] as XmlElement), "base64").length, 1);
    const dec = decodeResponse(overTheWire(enc.payload));
    assert.equal(sha(bodyBytes(dec.body, enc.chunks, 7)), sha(body));
  });

  it("clamps chunkSize to 256..65536", () => {
    const body = randomBytes(300_000);
    const cases: Array<[number, number]> = [
      [1, 256],
      [0, 256],
      [-50, 256],
      [255.9, 256],
      [1000.7, 1000],
      [65536, 65536],
      [65537, 65536],
      [10_000_000, 65536],
    ];
    for (const [asked, expected] of cases) {
      const enc = encodeResponse({ statusCode: 200, headers: [], body }, opts({ chunkThreshold: 1024, chunkSize: asked }));
      const sizes = enc.chunks.map((c) => Buffer.from(textOf(c), "base64").length);
      assert.equal(enc.chunks.length, Math.ceil(body.length / expected), `chunkSize ${asked}`);
      assert.ok(
        sizes.slice(0, -1).every((n) => n === expected),
        `chunkSize ${asked} → ${expected}`,
      );
      assert.ok((sizes.at(-1) as number) <= expected);
    }
  });

  it("reassembles chunks in shuffled order byte-exact (several orders)", () => {
    const body = randomBytes(200_000);
    const enc = encodeResponse(
      { statusCode: 200, headers: [["Content-Type", "image/jpeg"]], body },
      opts({ chunkThreshold: 1024, chunkSize: 1000 }),
    );
    assert.equal(enc.chunks.length, 200);
    const dec = decodeResponse(overTheWire(enc.payload));
    for (const seed of [1, 2, 3, 42, 1337]) {
      const order = shuffled(enc.chunks, seed);
      assert.notDeepEqual(
        order.map((c) => c.attrs.nr),
        enc.chunks.map((c) => c.attrs.nr),
        "really shuffled",
      );
      assert.deepEqual(bodyBytes(dec.body, enc.chunks, seed), body);
    }
  });

  it("chunks text bodies as base64 too and they survive byte-exact", () => {
    const body = Buffer.from("température ✓ <&> ".repeat(5000), "utf8");
    const enc = encodeRequest(
      { method: "PUT", resource: "/big", headers: [["Content-Type", "text/plain"]], body },
      opts({ chunkThreshold: 4096, chunkSize: 4096 }),
    );
    const dec = decodeRequest(overTheWire(enc.payload));
    assert.equal(dec.body.kind, "chunked");
    assert.deepEqual(bodyBytes(dec.body, enc.chunks, 9), body);
  });
});

describe("xep0332 serialization escaping", () => {
  const nasty = `a<b & c]]>d "double" 'single' </header> <!-- x --> &amp;`;

  it("escapes header values, resources and text so ltx reads back the same message", () => {
    const resource = `/q?v=${encodeURIComponent(nasty)}&raw="x'&<y>"`;
    const headers: HeaderList = [
      ["X-Nasty", nasty],
      ["Content-Type", "text/plain"],
    ];
    const body = Buffer.from(`body ${nasty} <![CDATA[ ]]> </text></data>`, "utf8");
    const enc = encodeRequest({ method: "POST", resource, headers, body }, opts());
    const xml = serialize(enc.payload);
    assert.ok(!xml.includes("]]>"), "']]>' never appears raw");
    assert.ok(!xml.includes("<!--"), "no raw comment opener");
    assert.equal(xml.match(/<header /g)?.length, 2);
    const dec = decodeRequest(parseXml(xml));
    assert.equal(dec.resource, resource);
    assert.deepEqual(dec.headers, headers);
    assert.equal(dec.body.kind === "inline" && dec.body.form, "text");
    assert.deepEqual(bodyBytes(dec.body, enc.chunks), body);
  });

  it("escapes quotes, angle brackets, ampersands and tabs in statusMessage", () => {
    const statusMessage = `It's "fine" & <ok> ]]>\tdone`;
    const enc = encodeResponse({ statusCode: 299, statusMessage, headers: [], body: Buffer.alloc(0) }, opts());
    const xml = serialize(enc.payload);
    assert.ok(xml.includes("&#9;"), "a tab in an attribute is written as a character reference");
    assert.ok(!xml.includes("\t"));
    const dec = decodeResponse(parseXml(xml));
    assert.equal(dec.statusMessage, statusMessage);
    assert.equal(dec.statusCode, 299);
  });

  it("re-parses inside a full IQ stanza exactly like on its own", () => {
    const enc = encodeResponse(
      { statusCode: 200, statusMessage: "OK", headers: [["Content-Type", "application/json"]], body: Buffer.from('{"a":"<&>"}') },
      opts(),
    );
    const iq = parseXml(`<iq type='result' id='x1' from='d@example.com/agent' to='gw.example.com'>${serialize(enc.payload)}</iq>`);
    const payload = childElements(iq)[0] as XmlElement;
    const dec = decodeResponse(payload);
    assert.deepEqual(bodyBytes(dec.body, []), Buffer.from('{"a":"<&>"}'));
  });
});
