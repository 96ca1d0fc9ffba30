/**
 * EarlyChunks (the bounded wait room for chunks that beat their IQ) and InboundStreams (reassembly of
 * chunkedBase64 bodies, early chunks included). Pure state; ages use an injected `now`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { EarlyChunks } from "../../lib/xep0332/early-chunks.js";
import { InboundStreams, StreamCancelled } from "../../lib/xep0332/inbound-streams.js";
import { CodecError, type Chunk } from "../../lib/xep0332/index.js";

const GW = "gateway.localhost";
const DEV = "dev-17@localhost/agent";

function chunk(streamId: string, nr: number, bytes: string | Buffer, last = false): Chunk {
  return { streamId, nr, last, bytes: typeof bytes === "string" ? Buffer.from(bytes) : bytes };
}

/** Lets pending promise callbacks run; no timers involved. */
function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function track<T>(p: Promise<T>): {
  readonly state: "pending" | "resolved" | "rejected";
  readonly value: T | undefined;
  readonly error: unknown;
} {
  let state: "pending" | "resolved" | "rejected" = "pending";
  let value: T | undefined;
  let error: unknown;
  p.then(
    (v) => {
      state = "resolved";
      value = v;
    },
    (e: unknown) => {
      state = "rejected";
      error = e;
    },
  );
  return {
    get state() {
      return state;
    },
    get value() {
      return value;
    },
    get error() {
      return error;
    },
  };
}

describe("EarlyChunks", () => {
  it("keeps chunks up to maxBytes in total and refuses the one that would pass it", () => {
    const early = new EarlyChunks({ maxBytes: 10, maxAgeMs: 1000 });
    assert.equal(early.add(DEV, chunk("S1", 0, "abcd"), 0), true);
    assert.equal(early.add(DEV, chunk("S2", 0, "efghij"), 0), true);
    assert.equal(early.bufferedBytes, 10);
    assert.equal(early.add(DEV, chunk("S1", 1, "k"), 0), false);
    assert.equal(early.add("other@localhost/agent", chunk("S3", 0, "k"), 0), false, "the bound is global, not per sender");
    assert.equal(early.bufferedBytes, 10);
    assert.equal(early.streamCount, 2);
    assert.equal(early.add(DEV, chunk("S1", 1, ""), 0), true, "an empty chunk still fits");
  });

  it("take() returns the stream's chunks in insertion order and frees their bytes", () => {
    const early = new EarlyChunks({ maxBytes: 100, maxAgeMs: 1000 });
    const c2 = chunk("S", 2, "cc", true);
    const c0 = chunk("S", 0, "a");
    const c1 = chunk("S", 1, "bbb");
    early.add(DEV, c2, 0);
    early.add(DEV, c0, 0);
    early.add(DEV, chunk("T", 0, "zzzz"), 0);
    early.add(DEV, c1, 0);
    assert.equal(early.bufferedBytes, 10);
    assert.deepEqual(early.take(DEV, "S", 0), [c2, c0, c1]);
    assert.equal(early.bufferedBytes, 4);
    assert.equal(early.streamCount, 1);
    assert.deepEqual(early.take(DEV, "S", 0), [], "a stream is taken once");
    assert.equal(early.take(DEV, "nope", 0).length, 0);
  });

  it("freed bytes make room for new chunks", () => {
    const early = new EarlyChunks({ maxBytes: 4, maxAgeMs: 1000 });
    assert.equal(early.add(DEV, chunk("S", 0, "abcd"), 0), true);
    assert.equal(early.add(DEV, chunk("T", 0, "e"), 0), false);
    early.take(DEV, "S", 0);
    assert.equal(early.add(DEV, chunk("T", 0, "e"), 0), true);
  });

  it("keys streams by normalized JID: case-insensitive bare part, exact resource", () => {
    const early = new EarlyChunks({ maxBytes: 100, maxAgeMs: 1000 });
    const c = chunk("S", 0, "x", true);
    early.add("Dev-17@LocalHost/agent", c, 0);
    assert.deepEqual(early.take("dev-17@localhost/Agent", "S", 0), [], "different resource");
    assert.deepEqual(early.take("DEV-17@LOCALHOST/agent", "S", 0), [c]);
  });

  it("keeps the same stream id from two senders apart", () => {
    const early = new EarlyChunks({ maxBytes: 100, maxAgeMs: 1000 });
    const a = chunk("S", 0, "a");
    const b = chunk("S", 0, "b");
    early.add("a@localhost/agent", a, 0);
    early.add("b@localhost/agent", b, 0);
    assert.equal(early.streamCount, 2);
    assert.deepEqual(early.take("b@localhost/agent", "S", 0), [b]);
    assert.deepEqual(early.take("a@localhost/agent", "S", 0), [a]);
  });

  it("expires streams whose first chunk is maxAgeMs old, on the next add", () => {
    const early = new EarlyChunks({ maxBytes: 100, maxAgeMs: 1000 });
    early.add(DEV, chunk("old", 0, "aaaa"), 0);
    early.add(DEV, chunk("mid", 0, "bb"), 500);
    early.add(DEV, chunk("old", 1, "c"), 900); // does not refresh the stream's age
    assert.equal(early.bufferedBytes, 7);
    early.add(DEV, chunk("new", 0, "d"), 1000);
    assert.deepEqual(early.take(DEV, "old", 1000), []);
    assert.equal(early.streamCount, 2);
    assert.equal(early.bufferedBytes, 3);
    assert.equal(early.take(DEV, "mid", 1000).length, 1);
    assert.equal(early.take(DEV, "new", 1000).length, 1);
    assert.equal(early.bufferedBytes, 0);
  });

  it("take() also drops streams that aged out, without a later add", () => {
    const early = new EarlyChunks({ maxBytes: 100, maxAgeMs: 1000 });
    early.add(DEV, chunk("S", 0, "a"), 0);
    assert.deepEqual(early.take(DEV, "S", 1000), []);
    assert.equal(early.bufferedBytes, 0);
  });

  it("a stream younger than maxAgeMs stays", () => {
    const early = new EarlyChunks({ maxBytes: 100, maxAgeMs: 1000 });
    early.add(DEV, chunk("S", 0, "a"), 0);
    early.add(DEV, chunk("T", 0, "b"), 999);
    assert.equal(early.take(DEV, "S", 999).length, 1);
  });

  it("expiry frees room before the bound is checked", () => {
    const early = new EarlyChunks({ maxBytes: 4, maxAgeMs: 1000 });
    assert.equal(early.add(DEV, chunk("S", 0, "abcd"), 0), true);
    assert.equal(early.add(DEV, chunk("T", 0, "e"), 999), false);
    assert.equal(early.add(DEV, chunk("T", 0, "e"), 1000), true);
    assert.equal(early.bufferedBytes, 1);
    assert.equal(early.streamCount, 1);
  });
});

describe("InboundStreams", () => {
  const limits = { maxEarlyBytes: 1024, maxEarlyAgeMs: 60_000 };

  it("reassembles chunks offered out of order into the exact bytes", async () => {
    const streams = new InboundStreams(limits, () => false);
    const body = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x80, 0x41, 0x42, 0xc3]);
    const p = streams.expect(DEV, "S", 1024);
    assert.equal(streams.has(DEV, "S"), true);
    assert.equal(streams.activeCount, 1);
    assert.equal(streams.offer(DEV, chunk("S", 2, body.subarray(6), true)), true);
    assert.equal(streams.offer(DEV, chunk("S", 0, body.subarray(0, 3))), true);
    assert.equal(streams.offer(DEV, chunk("S", 1, body.subarray(3, 6))), true);
    assert.deepEqual(await p, body);
    assert.equal(streams.activeCount, 0);
    assert.equal(streams.has(DEV, "S"), false);
  });

  it("does not resolve before every chunk up to the last has arrived", async () => {
    const streams = new InboundStreams(limits, () => false);
    const t = track(streams.expect(DEV, "S", 1024));
    streams.offer(DEV, chunk("S", 2, "c", true));
    streams.offer(DEV, chunk("S", 0, "a"));
    await flush();
    assert.equal(t.state, "pending");
    streams.offer(DEV, chunk("S", 1, "b"));
    await flush();
    assert.equal(t.state, "resolved");
    assert.equal(t.value?.toString(), "abc");
  });

  it("picks up early chunks (acceptEarly true) when the stream is expected later", async () => {
    const seen: string[] = [];
    const streams = new InboundStreams(limits, (from) => {
      seen.push(from);
      return from === GW;
    });
    assert.equal(streams.offer(GW, chunk("S", 1, "world", true)), true);
    assert.equal(streams.offer(GW, chunk("S", 0, "hello ")), true);
    assert.equal(streams.earlyBytes, 11);
    assert.equal(streams.activeCount, 0);
    assert.deepEqual(seen, [GW, GW]);
    const body = await streams.expect(GW, "S", 1024);
    assert.equal(body.toString(), "hello world");
    assert.equal(streams.earlyBytes, 0);
    assert.equal(streams.activeCount, 0);
  });

  it("combines early chunks with ones that come after expect()", async () => {
    const streams = new InboundStreams(limits, () => true);
    streams.offer(DEV, chunk("S", 1, "b"));
    const t = track(streams.expect(DEV, "S", 1024));
    await flush();
    assert.equal(t.state, "pending");
    streams.offer(DEV, chunk("S", 2, "c", true));
    streams.offer(DEV, chunk("S", 0, "a"));
    await flush();
    assert.equal(t.value?.toString(), "abc");
  });

  it("refuses chunks nobody expects when acceptEarly is false", () => {
    const streams = new InboundStreams(limits, () => false);
    assert.equal(streams.offer(DEV, chunk("S", 0, "a", true)), false);
    assert.equal(streams.earlyBytes, 0);
  });

  it("refuses early chunks past maxEarlyBytes", () => {
    const streams = new InboundStreams({ maxEarlyBytes: 4, maxEarlyAgeMs: 60_000 }, () => true);
    assert.equal(streams.offer(DEV, chunk("S", 0, "abcd")), true);
    assert.equal(streams.offer(DEV, chunk("S", 1, "e")), false);
    assert.equal(streams.earlyBytes, 4);
  });

  it("matches the sender case-insensitively in the bare part, exactly in the resource", async () => {
    const streams = new InboundStreams(limits, () => false);
    const p = streams.expect("Dev-17@LocalHost/agent", "S", 1024);
    assert.equal(streams.has("dev-17@localhost/agent", "S"), true);
    assert.equal(streams.has("dev-17@localhost/Agent", "S"), false);
    assert.equal(streams.offer("dev-17@localhost/Agent", chunk("S", 0, "x", true)), false, "another resource is another sender");
    assert.equal(streams.offer("DEV-17@localhost/agent", chunk("S", 0, "y", true)), true);
    assert.equal((await p).toString(), "y");
  });

  it("keeps streams of different senders with the same id apart", async () => {
    const streams = new InboundStreams(limits, () => false);
    const a = streams.expect("a@localhost/agent", "S", 1024);
    const b = streams.expect("b@localhost/agent", "S", 1024);
    assert.equal(streams.activeCount, 2);
    streams.offer("b@localhost/agent", chunk("S", 0, "bee", true));
    streams.offer("a@localhost/agent", chunk("S", 0, "ay", true));
    assert.equal((await a).toString(), "ay");
    assert.equal((await b).toString(), "bee");
  });

  it("rejects with a CodecError on a duplicate chunk, and forgets the stream", async () => {
    const streams = new InboundStreams(limits, () => false);
    const p = streams.expect(DEV, "S", 1024);
    streams.offer(DEV, chunk("S", 0, "a"));
    assert.equal(streams.offer(DEV, chunk("S", 0, "a")), true);
    await assert.rejects(p, (err: unknown) => err instanceof CodecError && err.reason === "malformed");
    assert.equal(streams.activeCount, 0);
    assert.equal(streams.has(DEV, "S"), false);
  });

  it("rejects with a too-large CodecError past the stream's maxBytes", async () => {
    const streams = new InboundStreams(limits, () => false);
    const p = streams.expect(DEV, "S", 5);
    streams.offer(DEV, chunk("S", 0, "abc"));
    streams.offer(DEV, chunk("S", 1, "def", true));
    await assert.rejects(p, (err: unknown) => err instanceof CodecError && err.reason === "too-large");
    assert.equal(streams.activeCount, 0);
  });

  it("a bad early chunk fails the stream as soon as it is expected", async () => {
    const streams = new InboundStreams(limits, () => true);
    streams.offer(DEV, chunk("S", 0, "a"));
    streams.offer(DEV, chunk("S", 0, "a"));
    await assert.rejects(streams.expect(DEV, "S", 1024), CodecError);
    assert.equal(streams.activeCount, 0);
    assert.equal(streams.earlyBytes, 0);
  });

  it("fail() without an error rejects with StreamCancelled naming the stream", async () => {
    const streams = new InboundStreams(limits, () => false);
    const p = streams.expect(DEV, "S-42", 1024);
    streams.fail(DEV, "S-42");
    await assert.rejects(
      p,
      (err: unknown) => err instanceof StreamCancelled && err.name === "StreamCancelled" && err.message.includes("S-42"),
    );
    assert.equal(streams.activeCount, 0);
    assert.equal(streams.has(DEV, "S-42"), false);
  });

  it("fail() with an error rejects with that error", async () => {
    const streams = new InboundStreams(limits, () => false);
    const p = streams.expect(DEV, "S", 1024);
    const err = new CodecError("malformed", "bad base64");
    streams.fail("DEV-17@localhost/agent", "S", err);
    await assert.rejects(p, (e: unknown) => e === err);
  });

  it("fail() says whether it cut an open stream off (the owner then tells the sender to stop)", async () => {
    const streams = new InboundStreams(limits, () => false);
    const p = streams.expect(DEV, "S", 1024);
    p.catch(() => undefined);
    assert.equal(streams.fail(DEV, "S"), true);
    assert.equal(streams.fail(DEV, "S"), false, "already ended");
    const done = streams.expect(DEV, "T", 1024);
    streams.offer(DEV, chunk("T", 0, "x", true));
    await done;
    assert.equal(streams.fail(DEV, "T"), false, "completed streams are not cut off");
    const broken = streams.expect(DEV, "U", 1024);
    broken.catch(() => undefined);
    streams.offer(DEV, chunk("U", 0, "a"));
    streams.offer(DEV, chunk("U", 0, "a"));
    assert.equal(streams.fail(DEV, "U"), false, "a stream a bad chunk failed is already gone");
  });

  it("ends a flood of empty chunks at the stream's count bound and forgets the stream", async () => {
    const streams = new InboundStreams(limits, () => false);
    const p = streams.expect(DEV, "S", 1024); // at most 5 chunks: four of 256 bytes and a short last one
    for (let nr = 0; nr < 1000; nr++) streams.offer(DEV, chunk("S", nr, ""));
    await assert.rejects(p, (err: unknown) => err instanceof CodecError && err.reason === "too-large" && /nr 5 /.test(err.message));
    assert.equal(streams.activeCount, 0);
    assert.equal(streams.offer(DEV, chunk("S", 999, "")), false, "later chunks find no stream");
  });

  it("earlyCount counts the streams waiting in the early buffer, empty chunks included", async () => {
    const streams = new InboundStreams(limits, () => true);
    streams.offer(DEV, chunk("S", 0, ""));
    streams.offer(DEV, chunk("T", 0, ""));
    streams.offer(DEV, chunk("T", 1, "x", true));
    assert.equal(streams.earlyCount, 2);
    assert.equal(streams.earlyBytes, 1);
    streams.offer(DEV, chunk("S", 1, "y", true));
    assert.equal((await streams.expect(DEV, "S", 1024)).toString(), "y");
    assert.equal(streams.earlyCount, 1);
  });

  it("fail() of an unknown stream is a no-op", async () => {
    const streams = new InboundStreams(limits, () => false);
    const t = track(streams.expect(DEV, "S", 1024));
    streams.fail(DEV, "T");
    streams.fail("other@localhost/agent", "S");
    await flush();
    assert.equal(t.state, "pending");
    assert.equal(streams.activeCount, 1);
    streams.fail(DEV, "S");
    await flush();
    assert.equal(t.state, "rejected");
  });

  it("chunks offered after completion do not reach the finished stream", async () => {
    const streams = new InboundStreams(limits, () => false);
    const p = streams.expect(DEV, "S", 1024);
    streams.offer(DEV, chunk("S", 0, "a", true));
    assert.equal((await p).toString(), "a");
    assert.equal(streams.offer(DEV, chunk("S", 1, "b")), false);
  });

  it("refuses a second expect() of a stream that is still open, and the first still completes", async () => {
    const streams = new InboundStreams(limits, () => false);
    const first = streams.expect(DEV, "S", 1024);
    await assert.rejects(streams.expect(DEV, "S", 1024), (err: unknown) => err instanceof CodecError && err.reason === "malformed");
    streams.offer(DEV, chunk("S", 0, "x", true));
    assert.equal((await first).toString(), "x");
  });
});
