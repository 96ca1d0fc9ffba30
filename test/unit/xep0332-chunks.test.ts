/**
 * XEP-0332 chunkedBase64: splitIntoChunks, decodeChunk, <close>, and ChunkAssembler's ordering, duplicate,
 * end-of-stream and size rules.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  ChunkAssembler,
  NS_HTTP,
  decodeChunk,
  el,
  encodeClose,
  isChunk,
  isClose,
  maxChunksFor,
  serialize,
  splitIntoChunks,
  textOf,
  type Chunk,
  type XmlElement,
} from "../../lib/xep0332/index.js";
import { parseXml } from "../helpers/xml.js";
import { expectCodecError } from "../helpers/thrown.js";

const chunkXml = (attrs: string, text = "QUJD"): string => `<chunk xmlns='urn:xmpp:http' ${attrs}>${text}</chunk>`;

function chunk(nr: number, bytes: Buffer | string, last = false, streamId = "s"): Chunk {
  return { streamId, nr, last, bytes: Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes) };
}

describe("xep0332 splitIntoChunks", () => {
  it("sends an empty body as one empty last chunk (never zero chunks)", () => {
    const chunks = splitIntoChunks("s0", Buffer.alloc(0), 256);
    assert.equal(chunks.length, 1);
    assert.deepEqual(chunks[0]?.attrs, { xmlns: NS_HTTP, streamId: "s0", nr: "0", last: "true" });
    assert.equal(textOf(chunks[0]), "");
    const back = decodeChunk(parseXml(serialize(chunks[0])));
    assert.deepEqual(back, { streamId: "s0", nr: 0, last: true, bytes: Buffer.alloc(0) });
  });

  it("gives a body of exactly one chunkSize one chunk, and one byte more two", () => {
    assert.equal(splitIntoChunks("a", randomBytes(256), 256).length, 1);
    const two = splitIntoChunks("a", randomBytes(257), 256);
    assert.equal(two.length, 2);
    assert.equal(two[0]?.attrs.last, undefined);
    assert.equal(two[1]?.attrs.last, "true");
    assert.equal(Buffer.from(textOf(two[1]), "base64").length, 1);
  });

  it("emits chunks that decode one by one back to the body", () => {
    const body = randomBytes(10_001);
    const chunks = splitIntoChunks("stream-x", body, 1000);
    assert.equal(chunks.length, 11);
    const decoded = chunks.map((c) => decodeChunk(parseXml(serialize(c))));
    assert.deepEqual(
      decoded.map((c) => c.nr),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    assert.deepEqual(
      decoded.map((c) => c.last),
      [...Array<boolean>(10).fill(false), true],
    );
    assert.ok(decoded.every((c) => c.streamId === "stream-x"));
    assert.ok(decoded.every((c) => c.bytes.length <= 1000));
    assert.deepEqual(Buffer.concat(decoded.map((c) => c.bytes)), body);
  });

  it("escapes a streamId with XML-special characters", () => {
    const [c] = splitIntoChunks(`s'"<&>`, Buffer.from("x"), 256);
    assert.equal(decodeChunk(parseXml(serialize(c as XmlElement))).streamId, `s'"<&>`);
  });
});

describe("xep0332 decodeChunk", () => {
  it("reads streamId, nr, last and the bytes", () => {
    assert.deepEqual(decodeChunk(parseXml(chunkXml("streamId='S1' nr='3' last='true'"))), {
      streamId: "S1",
      nr: 3,
      last: true,
      bytes: Buffer.from("ABC"),
    });
  });

  it("reads last='true'/'1' as true and 'false'/'0'/absent as false", () => {
    const cases: Array<[string, boolean]> = [
      ["last='true'", true],
      ["last='1'", true],
      ["last='false'", false],
      ["last='0'", false],
      ["", false],
    ];
    for (const [attr, expected] of cases) {
      assert.equal(decodeChunk(parseXml(chunkXml(`streamId='s' nr='0' ${attr}`))).last, expected, attr);
    }
  });

  it("accepts nr up to 1000000", () => {
    assert.equal(decodeChunk(parseXml(chunkXml("streamId='s' nr='1000000'"))).nr, 1_000_000);
    assert.equal(decodeChunk(parseXml(chunkXml("streamId='s' nr='0'"))).nr, 0);
  });

  it("accepts base64 wrapped over several lines", () => {
    assert.deepEqual(decodeChunk(parseXml(chunkXml("streamId='s' nr='0'", "\n  QUJD\n  REVG\n"))).bytes, Buffer.from("ABCDEF"));
  });

  it("refuses a missing or empty streamId", () => {
    expectCodecError(() => decodeChunk(parseXml(chunkXml("nr='0'"))), "malformed", "missing");
    expectCodecError(() => decodeChunk(parseXml(chunkXml("streamId='' nr='0'"))), "malformed", "empty");
  });

  for (const nr of ["-1", "x", "1.5", "", " 1", "1 ", "+1", "1e3", "0x1", "1000001", "9999999", "99999999999999999999", "١"]) {
    it(`refuses nr=${JSON.stringify(nr)}`, () => {
      expectCodecError(() => decodeChunk(parseXml(chunkXml(`streamId='s' nr='${nr}'`))), "malformed", nr);
    });
  }

  it("refuses a missing nr", () => {
    expectCodecError(() => decodeChunk(parseXml(chunkXml("streamId='s'"))), "malformed");
  });

  for (const last of ["maybe", "TRUE", "yes", "", "2", "True"]) {
    it(`refuses last=${JSON.stringify(last)}`, () => {
      expectCodecError(() => decodeChunk(parseXml(chunkXml(`streamId='s' nr='0' last='${last}'`))), "malformed", last);
    });
  }

  it("refuses bad base64 content", () => {
    for (const text of ["QUJ", "QUJD!", "QQ=", "QUJD-_8="]) {
      expectCodecError(() => decodeChunk(parseXml(chunkXml("streamId='s' nr='0'", text))), "malformed", text);
    }
  });

  it("refuses anything that is not <chunk xmlns='urn:xmpp:http'>", () => {
    expectCodecError(() => decodeChunk(parseXml("<chunk streamId='s' nr='0'>QUJD</chunk>")), "malformed", "no ns");
    expectCodecError(() => decodeChunk(parseXml("<chunk xmlns='urn:xmpp:http:1' streamId='s' nr='0'>QUJD</chunk>")), "malformed", "ns");
    expectCodecError(() => decodeChunk(parseXml("<close xmlns='urn:xmpp:http' streamId='s'/>")), "malformed", "close");
  });
});

describe("xep0332 <close> and predicates", () => {
  it("encodes <close xmlns='urn:xmpp:http' streamId/> and recognizes it after a trip through XML", () => {
    const close = encodeClose("S9");
    assert.deepEqual(close, { name: "close", attrs: { xmlns: NS_HTTP, streamId: "S9" }, children: [] });
    const back = parseXml(serialize(close));
    assert.ok(isClose(back));
    assert.ok(!isChunk(back));
    assert.equal(back.attrs.streamId, "S9");
  });

  it("tells chunks and closes apart by name and namespace", () => {
    assert.ok(isChunk(el("chunk", { xmlns: NS_HTTP })));
    assert.ok(!isChunk(el("chunk", { xmlns: "urn:other" })));
    assert.ok(!isChunk(el("chunk")));
    assert.ok(!isClose(el("close")));
    assert.ok(!isClose(el("chunk", { xmlns: NS_HTTP })));
  });
});

describe("xep0332 ChunkAssembler", () => {
  it("assembles in order, reverse order and any order", () => {
    const parts = ["alpha-", "beta-", "gamma-", "delta"];
    for (const order of [
      [0, 1, 2, 3],
      [3, 2, 1, 0],
      [2, 0, 3, 1],
      [1, 3, 0, 2],
    ]) {
      const a = new ChunkAssembler(1000);
      order.forEach((nr, i) => {
        assert.equal(a.complete, false, `not complete before chunk ${i} of ${order.join(",")}`);
        a.add(chunk(nr, parts[nr] as string, nr === 3));
      });
      assert.equal(a.complete, true);
      assert.equal(a.bufferedBytes, 22);
      assert.equal(a.take().toString(), "alpha-beta-gamma-delta");
    }
  });

  it("is not complete with a gap, even when the last chunk arrived", () => {
    const a = new ChunkAssembler(1000);
    a.add(chunk(0, "a"));
    a.add(chunk(2, "c", true));
    assert.equal(a.complete, false);
    assert.throws(() => a.take(), /not complete/);
    a.add(chunk(1, "b"));
    assert.equal(a.complete, true);
    assert.equal(a.take().toString(), "abc");
  });

  it("completes a single empty last chunk as an empty body", () => {
    const a = new ChunkAssembler(0);
    a.add(chunk(0, "", true));
    assert.equal(a.complete, true);
    assert.equal(a.take().length, 0);
  });

  it("throws from take() before the stream is complete", () => {
    const a = new ChunkAssembler(1000);
    assert.throws(() => a.take(), /not complete/, "nothing yet");
    a.add(chunk(0, "x"));
    assert.throws(() => a.take(), /not complete/, "no last yet");
  });

  it("refuses a duplicate nr", () => {
    const a = new ChunkAssembler(1000);
    a.add(chunk(0, "x"));
    expectCodecError(() => a.add(chunk(0, "x")), "malformed", "duplicate");
    a.add(chunk(1, "y", true));
    expectCodecError(() => a.add(chunk(1, "y", true)), "malformed", "duplicate last");
  });

  // The tests below use chunks of a few bytes: they give a count bound of their own (maxChunks, tested apart).
  it("refuses a chunk numbered after the last one", () => {
    const a = new ChunkAssembler(1000, 100);
    a.add(chunk(1, "b", true));
    expectCodecError(() => a.add(chunk(2, "c")), "malformed", "after last");
    expectCodecError(() => a.add(chunk(5, "c")), "malformed", "far after last");
  });

  it("refuses a last chunk numbered below a chunk already received", () => {
    const a = new ChunkAssembler(1000, 100);
    a.add(chunk(4, "e"));
    expectCodecError(() => a.add(chunk(2, "c", true)), "malformed", "last below received");
  });

  it("refuses two chunks marked last", () => {
    const a = new ChunkAssembler(1000);
    a.add(chunk(3, "d", true));
    expectCodecError(() => a.add(chunk(2, "c", true)), "malformed", "two lasts");
  });

  it("accepts exactly maxBytes and refuses one byte more as too-large", () => {
    const a = new ChunkAssembler(10, 100);
    a.add(chunk(0, "12345"));
    a.add(chunk(1, "67890"));
    assert.equal(a.bufferedBytes, 10);
    expectCodecError(() => a.add(chunk(2, "x", true)), "too-large", "over by one");

    const b = new ChunkAssembler(100);
    expectCodecError(() => b.add(chunk(0, Buffer.alloc(101))), "too-large", "one big chunk");
  });

  it("leaves its state unchanged when it refuses a chunk", () => {
    const a = new ChunkAssembler(10, 100);
    a.add(chunk(0, "123456"));
    expectCodecError(() => a.add(chunk(1, "78901", true)), "too-large", "too big last chunk");
    assert.equal(a.bufferedBytes, 6);
    assert.equal(a.complete, false);
    // The stream's last chunk is still unknown, so a fitting last chunk is taken, not "two chunks marked last".
    a.add(chunk(1, "7890", true));
    assert.equal(a.take().toString(), "1234567890");

    const b = new ChunkAssembler(100);
    b.add(chunk(0, "a"));
    expectCodecError(() => b.add(chunk(0, "a")), "malformed", "duplicate");
    assert.equal(b.bufferedBytes, 1);
  });

  it("bounds the chunk count by default: maxBytes / 256 full chunks plus a short or empty last one", () => {
    assert.equal(maxChunksFor(0), 1);
    assert.equal(maxChunksFor(255), 1);
    assert.equal(maxChunksFor(256), 2);
    assert.equal(maxChunksFor(1000), 4);
    assert.equal(maxChunksFor(128 * 1024), 513);
    // A body of exactly maxBytes in 256-byte chunks, closed by an empty last chunk, fits.
    const a = new ChunkAssembler(512);
    a.add(chunk(0, Buffer.alloc(256)));
    a.add(chunk(1, Buffer.alloc(256)));
    a.add(chunk(2, "", true));
    assert.equal(a.take().length, 512);
  });

  it("refuses a chunk numbered at or past maxChunks as too-large, without holding it", () => {
    const a = new ChunkAssembler(1_000_000, 3);
    a.add(chunk(2, "c"));
    expectCodecError(() => a.add(chunk(3, "d")), "too-large", "first past the bound");
    expectCodecError(() => a.add(chunk(999_999, "z", true)), "too-large", "far ahead");
    assert.equal(a.bufferedBytes, 1);
    a.add(chunk(0, "a"));
    a.add(chunk(1, "b"));
    assert.equal(a.complete, false, "no last chunk yet");
  });

  it("ends a flood of empty chunks at the count bound, although they cost no bytes", () => {
    const a = new ChunkAssembler(128 * 1024);
    let refused: unknown;
    let nr = 0;
    for (; nr < 10_000; nr++) {
      try {
        a.add(chunk(nr, ""));
      } catch (err) {
        refused = err;
        break;
      }
    }
    assert.equal(nr, 513);
    assert.equal(a.bufferedBytes, 0);
    expectCodecError(
      () => {
        throw refused;
      },
      "too-large",
      "empty flood",
    );
  });

  it("reassembles a large stream split by splitIntoChunks in random order", () => {
    const body = randomBytes(300_000);
    const chunks = splitIntoChunks("big", body, 4096).map((c) => decodeChunk(parseXml(serialize(c))));
    const order = chunks.map((_, i) => i).sort((x, y) => ((x * 7919) % 101) - ((y * 7919) % 101) || x - y);
    const a = new ChunkAssembler(body.length);
    for (const i of order) a.add(chunks[i] as Chunk);
    assert.ok(a.complete);
    assert.deepEqual(a.take(), body);
  });
});

describe("chunk size guards", () => {
  it("clamps a NaN chunk size to the default instead of losing the body", async () => {
    const { clampChunkSize, DEFAULT_CHUNK_SIZE } = await import("../../lib/xep0332/constants.js");
    assert.equal(clampChunkSize(Number.NaN), DEFAULT_CHUNK_SIZE);
  });
  it("refuses to split with a chunk size below 1 rather than looping", async () => {
    const { splitIntoChunks } = await import("../../lib/xep0332/chunks.js");
    assert.throws(() => splitIntoChunks("s", Buffer.alloc(10), 0), RangeError);
  });
});
