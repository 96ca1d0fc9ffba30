// What the gateway withstands from devices that misbehave on purpose: oversized replies, chunk streams that
// never end, skip, repeat, run ahead of their reply or cross into another exchange's stream, spoofed and
// malformed replies, bytes that are not UTF-8, bad status codes, illegal or countless header fields, lengths
// a client cannot parse, and floods of empty chunks. For every
// case the client gets a catalogue error, the drop is counted, nothing is left behind (pending exchanges,
// chunk streams, in-flight slots and correlation records in Redis), and a well-behaved device next to it
// keeps answering byte-exact.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { NS_HTTP, NS_SHIM } from "../../lib/xep0332/constants.js";
import { MAX_HEAD_FIELDS } from "../../lib/xep0332/headers.js";
import { el, type XmlElement } from "../../lib/xep0332/xml.js";
import { pollUntil } from "../../local-stack/ports.js";
import { echoDevice } from "../helpers/echo-device.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";
import { chunk, chunkedHead, headers, iqError, resp, result, textBody } from "../helpers/stanzas.js";
import { startPeer, type IncomingRequest, type Peer } from "../helpers/xmpp-peer.js";

/** Small enough that an inline reply over it still fits in one stanza (Prosody: 256 KiB on c2s). */
const MAX_REPLY = 128 * 1024;
/** ChunkAssembler's bound for MAX_REPLY: 512 chunks of XEP-0332's smallest size, plus a short last one. */
const MAX_CHUNKS = MAX_REPLY / 256 + 1;
/** The well-behaved device's deadline: its stream routes are gone this long after its last request. */
const BYSTANDER_TIMEOUT_MS = 10_000;
/**
 * The deadline of a case whose steps must all happen before it: the device's chunks must reach an open stream,
 * a spoof must meet the exchange it spoofs. Its stream routes outlive it until then, and cases that end at it
 * wait for it, so it is no longer than a loaded machine needs for a handful of stanzas.
 */
const CASE_DEADLINE_MS = 5000;
/** The deadline of a case that the device answers inline at once: a bound that only a failure reaches. */
const ANSWER_BOUND_MS = 10_000;

interface ErrorBody {
  error: { code: string; message: string; deviceId?: string; requestId: string };
}

/** What a case may leave behind; all of it must be back to zero once the case is over. */
interface Counts {
  pending: number;
  streams: number;
  earlyStreams: number;
  inflightSlots: number;
  correlation: number;
  exchangesByJid: number;
  streamRoutes: number;
  parked: number;
  parkedBytes: number;
}

const ZERO: Counts = {
  pending: 0,
  streams: 0,
  earlyStreams: 0,
  inflightSlots: 0,
  correlation: 0,
  exchangesByJid: 0,
  streamRoutes: 0,
  parked: 0,
  parkedBytes: 0,
};

describe("hostile devices", { timeout: 600_000 }, () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let hostile: Peer;
  let intruder: Peer;
  let domain: string;

  async function metric(name: "dropped" | "timeouts", reason?: string): Promise<number> {
    if (name === "timeouts") return (await gw.gateway.metrics.iqTimeouts.get()).values[0]?.value ?? 0;
    return (await gw.gateway.metrics.repliesDropped.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  }

  /**
   * Counter values before a case; `grew` polls until each named one has grown by exactly that much (or, given
   * several expectations, until one of them holds: for a stanza whose count depends on a race the case cannot
   * order, such as a chunk arriving as its stream's claim in Redis expires).
   */
  async function snapshot(): Promise<(expected: Record<string, number> | Array<Record<string, number>>) => Promise<void>> {
    const reasons = ["late", "duplicate", "unknown", "spoofed", "malformed"];
    const before: Record<string, number> = { timeouts: await metric("timeouts") };
    for (const r of reasons) before[r] = await metric("dropped", r);
    return async (expected) => {
      let last: Record<string, number> = {};
      const wants = (Array.isArray(expected) ? expected : [expected]).map((one) =>
        Object.fromEntries([...reasons, "timeouts"].map((k) => [k, (before[k] ?? 0) + (one[k] ?? 0)])),
      );
      const settled = await pollUntil(
        "counters",
        async () => {
          last = { timeouts: await metric("timeouts") };
          for (const r of reasons) last[r] = await metric("dropped", r);
          return wants.some((want) => Object.keys(want).every((k) => last[k] === want[k]));
        },
        { timeoutMs: 15_000 },
      ).catch(() => false);
      assert.ok(settled, `counters: expected ${wants.map((want) => JSON.stringify(want)).join(" or ")}, got ${JSON.stringify(last)}`);
    };
  }

  async function keyCount(...patterns: string[]): Promise<number> {
    let n = 0;
    for (const pattern of patterns) n += (await gw.gateway.redis.client.keys(`${gw.config.redis.keyPrefix}${pattern}`)).length;
    return n;
  }

  async function counts(): Promise<Counts> {
    const client = gw.gateway.redis.client;
    let inflightSlots = 0;
    for (const key of await client.keys(`${gw.config.redis.keyPrefix}inflight:*`)) inflightSlots += await client.zcard(key);
    return {
      pending: gw.gateway.pending.size,
      streams: gw.gateway.exchanger.streams.activeCount,
      earlyStreams: gw.gateway.exchanger.streams.earlyCount,
      inflightSlots,
      correlation: await keyCount("corr:*"),
      exchangesByJid: await keyCount("exchanges:*"),
      // A stream's route outlives its exchange until the deadline, by design (a chunk after the end is then
      // known as late); the well-behaved device's are checked at the end, when they have all expired.
      streamRoutes: await keyCount("stream:hostile@*", "stream:intruder@*"),
      parked: await keyCount("parked:*"),
      parkedBytes: await keyCount("parkedbytes:*"),
    };
  }

  /** Everything a case created is gone: polled (stream routes expire at their exchange's deadline). */
  async function assertNothingLeft(): Promise<void> {
    let last = ZERO;
    const ok = await pollUntil(
      "nothing left",
      async () => {
        last = await counts();
        return Object.values(last).every((n) => n === 0);
      },
      { timeoutMs: CASE_DEADLINE_MS + 10_000 },
    ).catch(() => false);
    assert.ok(ok, `left behind: ${JSON.stringify(last)}`);
  }

  /**
   * A well-behaved device answered through the same gateway while the case runs: bodies inline and chunked
   * (both ways), each compared byte for byte.
   */
  function bystander(): { stop(): Promise<{ ok: number; wrong: string[] }> } {
    let stopping = false;
    let ok = 0;
    const wrong: string[] = [];
    const loop = (async () => {
      // Until stopped, and then until one request went through (or a few failed: the case reports them).
      for (let i = 0; !stopping || (ok === 0 && wrong.length < 3); i++) {
        const body = randomBytes(i % 3 === 0 ? 100_000 : 1 + ((i * 7919) % 3000));
        try {
          const res = await fetch(`${gw.url}/devices/good/echo/${i}`, {
            method: "POST",
            body,
            headers: { "content-type": "application/octet-stream", "X-Gateway-Timeout": String(BYSTANDER_TIMEOUT_MS) },
          });
          const got = Buffer.from(await res.arrayBuffer());
          if (res.status === 200 && got.equals(body)) ok++;
          else wrong.push(`request ${i}: ${res.status}, ${got.length} bytes for ${body.length}: ${got.subarray(0, 200).toString()}`);
        } catch (err) {
          wrong.push(`request ${i}: ${(err as Error).message}`);
        }
      }
    })();
    return {
      async stop() {
        stopping = true;
        await loop;
        return { ok, wrong };
      },
    };
  }

  /** A hostile case: a bystander runs along, and afterwards nothing may be left behind. */
  function hostileCase(name: string, fn: () => Promise<void>): void {
    it(name, async () => {
      const by = bystander();
      let seen: { ok: number; wrong: string[] };
      try {
        await fn();
      } finally {
        // Stopped whether or not the case failed; a failure of the case propagates from here.
        seen = await by.stop();
      }
      assert.deepEqual(seen.wrong, [], "the well-behaved device got a wrong answer");
      assert.ok(seen.ok >= 1);
      await assertNothingLeft();
    });
  }

  /** A client request to a device played by `peer`, and the IQ the peer received for it. */
  async function ask(
    peer: Peer,
    timeoutMs: number,
    path = "/x",
    init: RequestInit = {},
  ): Promise<{ reply: Promise<Response>; req: IncomingRequest }> {
    const id = peer.jid.split("@")[0] as string;
    const reply = fetch(`${gw.url}/devices/${id}${path}`, {
      ...init,
      headers: { "X-Gateway-Timeout": String(timeoutMs), ...(init.headers as Record<string, string>) },
    });
    reply.catch(() => undefined);
    return { reply, req: await peer.nextRequest() };
  }

  async function expectError(reply: Promise<Response>, status: number, code: string, deviceId = "hostile"): Promise<ErrorBody> {
    const res = await reply;
    const text = await res.text();
    assert.equal(res.status, status, text);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    const body = JSON.parse(text) as ErrorBody;
    assert.equal(body.error.code, code, text);
    assert.equal(typeof body.error.message, "string");
    assert.equal(body.error.deviceId, deviceId);
    assert.ok(body.error.requestId);
    assert.equal(res.headers.get("x-request-id"), body.error.requestId);
    return body;
  }

  /** The server closed the peer's stream with this stream error (RFC 6120 §4.9.3). */
  async function cutOff(condition: string): Promise<void> {
    await pollUntil("hostile peer cut off", () => !hostile.online, { timeoutMs: 15_000 });
    const conditions = hostile.errors.map((e) => (e as { condition?: string }).condition);
    assert.ok(conditions.includes(condition), `stream errors: ${JSON.stringify(conditions)}`);
  }

  async function reconnectHostile(): Promise<void> {
    await hostile.stop();
    hostile = teardown.stopLater("hostile again", await startPeer(stack.prosody, "hostile", { createAccount: false }));
  }

  function closesSent(peer: Peer, streamId: string): number {
    return peer.received.filter((s) => s.getChild("close", NS_HTTP)?.attrs.streamId === streamId).length;
  }

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater(
      "gateway",
      await startGateway(stack, { GATEWAY_MAX_REPLY_BYTES: String(MAX_REPLY), GATEWAY_REQUEST_TIMEOUT_MS: "10000" }),
    );
    domain = gw.config.xmpp.domain;
    hostile = teardown.stopLater("hostile", await startPeer(stack.prosody, "hostile"));
    intruder = teardown.stopLater("intruder", await startPeer(stack.prosody, "intruder"));
    const fleet = await startFleet(stack.prosody, ["good"], echoDevice);
    teardown.add("fleet", () => fleet.stop());
    assert.deepEqual(await counts(), ZERO);
  });
  after(() => teardown.run());

  describe("replies over the size limits", () => {
    hostileCase("an inline body far over GATEWAY_MAX_REPLY_BYTES: 502, counted malformed", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
      await hostile.send(result(req, resp("200", el("data", {}, el("base64", {}, randomBytes(170_000).toString("base64"))))));
      await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
      await grew({ malformed: 1 });
    });

    hostileCase("an inline body over Prosody's stanza limit: the device is cut off, the client gets 504 at the deadline", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, 1000);
      await hostile
        .send(result(req, resp("200", el("data", {}, el("base64", {}, randomBytes(1024 * 1024).toString("base64"))))))
        .catch(() => undefined);
      await cutOff("policy-violation");
      // Meanwhile a new request to the device is bounced by the server at once.
      const res = await fetch(`${gw.url}/devices/hostile/next`);
      assert.equal(res.headers.get("retry-after"), "30");
      await expectError(Promise.resolve(res), 503, "GW_DEVICE_OFFLINE");
      await reconnectHostile();
      await expectError(reply, 504, "GW_DEVICE_TIMEOUT");
      await grew({ timeouts: 1 });
    });

    hostileCase(
      "a chunked body far over the limit: 502 at the chunk that crosses it, <close> sent, later chunks counted late",
      async () => {
        const grew = await snapshot();
        const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
        await hostile.send(result(req, chunkedHead("big")));
        // 8 chunks of 32 KiB: the 5th passes 128 KiB.
        for (let nr = 0; nr < 8; nr++) await hostile.send(chunk(domain, "big", nr, randomBytes(32 * 1024), nr === 7));
        await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
        await grew({ malformed: 1, late: 3 });
        await pollUntil("close sent", () => closesSent(hostile, "big") === 1, { timeoutMs: 15_000 });
      },
    );
  });

  describe("chunks sent ahead of their reply", () => {
    hostileCase("a chunked body far over the limit, all sent before the head: parked bytes bounded, 502 once the head comes", async () => {
      const grew = await snapshot();
      const unknownBefore = await metric("dropped", "unknown");
      const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
      const n = 12;
      for (let nr = 0; nr < n; nr++) await hostile.send(chunk(domain, "ahead", nr, randomBytes(32 * 1024), nr === n - 1));
      const parkKey = gw.gateway.redis.keys.parkedChunks(hostile.jid, "ahead");
      let parked: string[] = [];
      await pollUntil(
        "chunks parked or refused",
        async () => {
          parked = (await gw.gateway.redis.client.lrange(parkKey, 0, -1)).filter((p) => p.startsWith("{"));
          return (await metric("dropped", "unknown")) - unknownBefore + parked.length === n;
        },
        { timeoutMs: 15_000 },
      );
      const bytes = parked.reduce((sum, p) => sum + p.length, 0);
      assert.ok(parked.length < n && bytes <= 2 * MAX_REPLY + 64 * 1024, `${parked.length} chunks, ${bytes} bytes parked`);
      await hostile.send(result(req, chunkedHead("ahead")));
      await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
      // Refused chunks are counted unknown as they come; the parked ones, late, as the failed stream claims them.
      await grew({ malformed: 1, unknown: n - parked.length, late: parked.length });
      await pollUntil("close sent", () => closesSent(hostile, "ahead") === 1, { timeoutMs: 15_000 });
    });

    hostileCase("a chunked body within the limit, all sent before the head: parked, then reassembled byte-exact", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
      const body = randomBytes(100_000);
      for (let nr = 0; nr < 4; nr++)
        await hostile.send(chunk(domain, "early", nr, body.subarray(nr * 25_000, (nr + 1) * 25_000), nr === 3));
      await pollUntil(
        "chunks parked",
        async () => (await gw.gateway.redis.client.llen(gw.gateway.redis.keys.parkedChunks(hostile.jid, "early"))) === 4,
        { timeoutMs: 15_000 },
      );
      await hostile.send(result(req, chunkedHead("early")));
      const res = await reply;
      assert.equal(res.status, 200);
      assert.ok(Buffer.from(await res.arrayBuffer()).equals(body));
      await grew({});
    });
  });

  describe("chunk streams", () => {
    hostileCase("a stream that never ends: 504 at the deadline, the stream released and closed at the device", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
      await hostile.send(result(req, chunkedHead("endless")));
      await hostile.send(chunk(domain, "endless", 0, randomBytes(1000)));
      await hostile.send(chunk(domain, "endless", 1, randomBytes(1000)));
      await pollUntil("stream open", () => gw.gateway.exchanger.streams.has(hostile.jid, "endless"), { timeoutMs: 15_000 });
      await expectError(reply, 504, "GW_DEVICE_TIMEOUT");
      assert.equal(gw.gateway.exchanger.streams.has(hostile.jid, "endless"), false);
      await pollUntil("close sent", () => closesSent(hostile, "endless") === 1, { timeoutMs: 15_000 });
      // The exchange ended with its deadline, and so does the stream's claim in Redis (its TTL), give or take
      // the claim command's way to Redis: the chunk is from a sender with nothing in flight (unknown), or
      // still finds this instance's claim for a stream no longer here (late). Dropped and counted once either way.
      await hostile.send(chunk(domain, "endless", 2, randomBytes(1000)));
      await grew([
        { timeouts: 1, unknown: 1 },
        { timeouts: 1, late: 1 },
      ]);
    });

    hostileCase("a stream with a gap (0, 2 last): 504 at the deadline, released", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
      await hostile.send(result(req, chunkedHead("gap")));
      await hostile.send(chunk(domain, "gap", 0, randomBytes(500)));
      await hostile.send(chunk(domain, "gap", 2, randomBytes(500), true));
      await expectError(reply, 504, "GW_DEVICE_TIMEOUT");
      await grew({ timeouts: 1 });
      await pollUntil("close sent", () => closesSent(hostile, "gap") === 1, { timeoutMs: 15_000 });
    });

    hostileCase("a stream that skips to nr 900000: 502 at once (past the chunks the byte bound allows)", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
      await hostile.send(result(req, chunkedHead("skip")));
      await hostile.send(chunk(domain, "skip", 0, randomBytes(500)));
      await hostile.send(chunk(domain, "skip", 900_000, randomBytes(500), true));
      const body = await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
      assert.match(body.error.message, /900000/);
      await grew({ malformed: 1 });
    });

    hostileCase("a stream that repeats a number: 502, <close> sent", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
      await hostile.send(result(req, chunkedHead("again")));
      await hostile.send(chunk(domain, "again", 0, randomBytes(500)));
      await hostile.send(chunk(domain, "again", 1, randomBytes(500)));
      await hostile.send(chunk(domain, "again", 1, randomBytes(500)));
      await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
      await grew({ malformed: 1 });
      await pollUntil("close sent", () => closesSent(hostile, "again") === 1, { timeoutMs: 15_000 });
    });

    hostileCase(`a flood of empty chunks: 502 at nr ${MAX_CHUNKS}, not thousands of entries held`, async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
      await hostile.send(result(req, chunkedHead("flood")));
      const n = 3000;
      let raw = "";
      for (let nr = 0; nr < n; nr++) raw += `<message to='${domain}'><chunk xmlns='${NS_HTTP}' streamId='flood' nr='${nr}'/></message>`;
      await hostile.sendRaw(raw);
      const body = await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
      assert.match(body.error.message, new RegExp(`nr ${MAX_CHUNKS} `));
      // Every chunk after the one refused finds its stream ended.
      await grew({ malformed: 1, late: n - MAX_CHUNKS - 1 });
    });
  });

  describe("chunks for another exchange's stream", () => {
    hostileCase(
      "from another JID with no exchange in flight: dropped as unknown, never parked; the stream's owner completes byte-exact",
      async () => {
        const grew = await snapshot();
        const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
        const body = randomBytes(3000);
        await hostile.send(result(req, chunkedHead("victim")));
        await hostile.send(chunk(domain, "victim", 0, body.subarray(0, 1500)));
        await intruder.send(chunk(domain, "victim", 1, randomBytes(1500), true));
        await intruder.send(chunk(domain, "victim", 0, randomBytes(1500)));
        await grew({ unknown: 2 });
        assert.equal(await keyCount("parked:*"), 0);
        await hostile.send(chunk(domain, "victim", 1, body.subarray(1500), true));
        const res = await reply;
        assert.equal(res.status, 200);
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(body));
      },
    );

    hostileCase(
      "from another JID that has an exchange in flight: parked no longer than that exchange's deadline; the owner completes byte-exact",
      async () => {
        const grew = await snapshot();
        const own = await ask(intruder, CASE_DEADLINE_MS);
        const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
        const body = randomBytes(3000);
        await hostile.send(result(req, chunkedHead("victim2")));
        await intruder.send(chunk(domain, "victim2", 0, randomBytes(1500)));
        await pollUntil("parked", async () => (await keyCount("parked:*")) === 1, { timeoutMs: 15_000 });
        await hostile.send(chunk(domain, "victim2", 0, body.subarray(0, 1500)));
        await hostile.send(chunk(domain, "victim2", 1, body.subarray(1500), true));
        const res = await reply;
        assert.equal(res.status, 200);
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(body));
        await expectError(own.reply, 504, "GW_DEVICE_TIMEOUT", "intruder");
        await grew({ timeouts: 1 });
      },
    );

    hostileCase(
      "from the same device, announcing the stream id of its other open exchange: that reply is 502, the other completes byte-exact",
      async () => {
        const grew = await snapshot();
        const first = await ask(hostile, CASE_DEADLINE_MS, "/first");
        const second = await ask(hostile, CASE_DEADLINE_MS, "/second");
        const body = randomBytes(3000);
        await hostile.send(result(first.req, chunkedHead("shared")));
        await hostile.send(chunk(domain, "shared", 0, body.subarray(0, 1500)));
        await hostile.send(result(second.req, chunkedHead("shared")));
        await expectError(second.reply, 502, "GW_BAD_DEVICE_REPLY");
        await hostile.send(chunk(domain, "shared", 1, body.subarray(1500), true));
        const res = await first.reply;
        assert.equal(res.status, 200);
        assert.ok(Buffer.from(await res.arrayBuffer()).equals(body));
        assert.equal(closesSent(hostile, "shared"), 0, "the open stream was not closed at the device");
        await grew({ malformed: 1 });
      },
    );
  });

  describe("spoofed replies", () => {
    hostileCase("another device's JID with the real id: counted spoofed, never the client's answer; the genuine reply wins", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
      await intruder.send(result(req, resp("200", ...textBody("forged"))));
      await intruder.send(iqError(req, "item-not-found"));
      await grew({ spoofed: 2 });
      await hostile.send(result(req, resp("200", ...textBody("genuine"))));
      const res = await reply;
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "genuine");
    });

    hostileCase("another device's JID with a guessed id: counted unknown; a spoof alone leaves the client to its 504", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, CASE_DEADLINE_MS);
      await intruder.send(result({ id: "guessed-0000000000", from: req.from }, resp("200", ...textBody("forged"))));
      await intruder.send(result(req, resp("200", ...textBody("forged"))));
      await expectError(reply, 504, "GW_DEVICE_TIMEOUT");
      await grew({ unknown: 1, spoofed: 1, timeouts: 1 });
    });
  });

  describe("malformed payloads", () => {
    const payloads: Array<[string, () => XmlElement | undefined]> = [
      ["no payload at all", () => undefined],
      ["a <req> instead of a <resp>", () => el("req", { xmlns: NS_HTTP, method: "GET", resource: "/", version: "1.1" })],
      ["a <resp> in another namespace", () => el("resp", { xmlns: "urn:example:other", version: "1.1", statusCode: "200" })],
      [
        "an unknown element",
        () => el("mystery", { xmlns: "urn:example:other" }, el("resp", { xmlns: NS_HTTP, version: "1.1", statusCode: "200" })),
      ],
      ["a <resp> without a version", () => el("resp", { xmlns: NS_HTTP, statusCode: "200" })],
      ["<data> with two bodies", () => resp("200", el("data", {}, el("text", {}, "a"), el("base64", {}, "QQ==")))],
      ["an unknown body form", () => resp("200", el("data", {}, el("mystery", {})))],
      ["a <chunkedBase64> without a streamId", () => resp("200", el("data", {}, el("chunkedBase64", {})))],
      ["<base64> that is not base64", () => resp("200", el("data", {}, el("base64", {}, "@@@")))],
      ["<headers> holding something else", () => resp("200", el("headers", { xmlns: NS_SHIM }, el("bogus", {})))],
      ["a <header> without a name", () => resp("200", el("headers", { xmlns: NS_SHIM }, el("header", {}, "v")))],
    ];
    for (const [what, payload] of payloads) {
      hostileCase(`${what}: 502, counted malformed`, async () => {
        const grew = await snapshot();
        const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
        await hostile.send(result(req, payload()));
        await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
        await grew({ malformed: 1 });
      });
    }
  });

  describe("status codes", () => {
    for (const status of ["abc", "99", "1000", "-1", "2e2", "", " 200", "200.0", "0200", "600", "101", undefined]) {
      hostileCase(`statusCode=${JSON.stringify(status)}: 502, counted malformed`, async () => {
        const grew = await snapshot();
        const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
        await hostile.send(result(req, resp(status, ...textBody("x"))));
        await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
        await grew({ malformed: 1 });
      });
    }
  });

  describe("header fields", () => {
    const illegal: Array<[string, [string, string]]> = [
      ["CR/LF injection in a value", ["X-Evil", "a\r\nSet-Cookie: evil=1"]],
      ["a bare LF in a value", ["X-Evil", "a\nSet-Cookie: evil=1"]],
      ["a name with a space", ["X Evil", "v"]],
      ["a name with a colon", ["Set-Cookie: evil=1; X", "v"]],
      ["a name with CR/LF", ["X\r\nSet-Cookie", "evil=1"]],
      ["a DEL in a value", ["X-Evil", "a\u007fb"]],
      ["a character past U+00FF in a value", ["X-Evil", "\u20ac"]],
      ["a non-ASCII name", ["X-\u00e9", "v"]],
    ];
    for (const [what, field] of illegal) {
      hostileCase(`${what}: 502, counted malformed, nothing injected`, async () => {
        const grew = await snapshot();
        const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
        await hostile.send(result(req, resp("200", headers(["Content-Type", "text/plain"], field), el("data", {}, el("text", {}, "x")))));
        const res = await reply;
        assert.equal(res.headers.get("set-cookie"), null);
        await expectError(Promise.resolve(res), 502, "GW_BAD_DEVICE_REPLY");
        await grew({ malformed: 1 });
      });
    }

    hostileCase("CR/LF as character references on the wire: 502, nothing injected", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
      await hostile.sendRaw(
        `<iq type='result' id='${req.id}' to='${req.from}'><resp xmlns='${NS_HTTP}' version='1.1' statusCode='200'>` +
          `<headers xmlns='${NS_SHIM}'><header name='X-Evil'>a&#13;&#10;Set-Cookie: evil=1</header></headers></resp></iq>`,
      );
      const res = await reply;
      assert.equal(res.headers.get("set-cookie"), null);
      await expectError(Promise.resolve(res), 502, "GW_BAD_DEVICE_REPLY");
      await grew({ malformed: 1 });
    });

    hostileCase(`exactly ${MAX_HEAD_FIELDS} fields pass; one more is 502`, async () => {
      const fields = (n: number) => Array.from({ length: n }, (_, i): [string, string] => [`X-F${i}`, String(i)]);
      const grew = await snapshot();
      const ok = await ask(hostile, ANSWER_BOUND_MS);
      await hostile.send(result(ok.req, resp("200", headers(...fields(MAX_HEAD_FIELDS)))));
      const res = await ok.reply;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get(`x-f${MAX_HEAD_FIELDS - 1}`), String(MAX_HEAD_FIELDS - 1));
      const over = await ask(hostile, ANSWER_BOUND_MS);
      await hostile.send(result(over.req, resp("200", headers(...fields(MAX_HEAD_FIELDS + 1)))));
      await expectError(over.reply, 502, "GW_BAD_DEVICE_REPLY");
      await grew({ malformed: 1 });
    });

    hostileCase("thousands of fields: 502, counted malformed", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
      await hostile.send(result(req, resp("200", headers(...Array.from({ length: 5000 }, (): [string, string] => ["X-A", "b"])))));
      await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
      await grew({ malformed: 1 });
    });

    hostileCase("a reason phrase of 100 KB: 502, counted malformed", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
      await hostile.send(
        result(req, el("resp", { xmlns: NS_HTTP, version: "1.1", statusCode: "200", statusMessage: "k".repeat(100_000) })),
      );
      await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
      await grew({ malformed: 1 });
    });

    hostileCase("a reason phrase with CR/LF (character references): 502, nothing injected", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
      await hostile.sendRaw(
        `<iq type='result' id='${req.id}' to='${req.from}'><resp xmlns='${NS_HTTP}' version='1.1' statusCode='200' statusMessage='OK&#13;&#10;Set-Cookie: evil=1'/></iq>`,
      );
      const res = await reply;
      assert.equal(res.headers.get("set-cookie"), null);
      await expectError(Promise.resolve(res), 502, "GW_BAD_DEVICE_REPLY");
      await grew({ malformed: 1 });
    });

    // A HEAD (or 304) reply keeps the length the device declared: a bad one would reach the client's parser.
    for (const lengths of [["abc"], ["-1"], ["1, 2"], ["5", "5"], ["5", "6"], ["0x10"], [" 5"]]) {
      hostileCase(`Content-Length ${JSON.stringify(lengths)} on a HEAD reply: 502, counted malformed`, async () => {
        const grew = await snapshot();
        const { reply, req } = await ask(hostile, ANSWER_BOUND_MS, "/x", { method: "HEAD" });
        await hostile.send(result(req, resp("200", headers(...lengths.map((v): [string, string] => ["Content-Length", v])))));
        const res = await reply;
        // The gateway's own error: the length is that of its JSON body (a HEAD response carries none).
        assert.equal(res.status, 502);
        assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
        assert.match(res.headers.get("content-length") ?? "", /^\d+$/);
        assert.ok(res.headers.get("x-request-id"));
        await grew({ malformed: 1 });
      });
    }

    hostileCase("legal edge cases still pass: a HEAD reply's own Content-Length, obs-text in a value", async () => {
      const grew = await snapshot();
      const head = await ask(hostile, ANSWER_BOUND_MS, "/x", { method: "HEAD" });
      await hostile.send(result(head.req, resp("200", headers(["Content-Length", "12345"]))));
      const res = await head.reply;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-length"), "12345");
      const obs = await ask(hostile, ANSWER_BOUND_MS);
      await hostile.send(result(obs.req, resp("200", headers(["X-Obs", "caf\u00e9 \u00ff"]))));
      const res2 = await obs.reply;
      assert.equal(res2.status, 200);
      assert.equal(
        Buffer.from(res2.headers.get("x-obs") ?? "", "latin1").toString("hex"),
        Buffer.from("caf\u00e9 \u00ff", "latin1").toString("hex"),
      );
      await grew({});
    });

    hostileCase("one field of 100 KB: 502, counted malformed", async () => {
      const grew = await snapshot();
      const { reply, req } = await ask(hostile, ANSWER_BOUND_MS);
      await hostile.send(result(req, resp("200", headers(["X-Big", "b".repeat(100_000)]))));
      await expectError(reply, 502, "GW_BAD_DEVICE_REPLY");
      await grew({ malformed: 1 });
    });
  });

  describe("bytes that are not UTF-8, and characters XML forbids", () => {
    const open = (req: IncomingRequest) =>
      `<iq type='result' id='${req.id}' to='${req.from}'><resp xmlns='${NS_HTTP}' version='1.1' statusCode='200'>`;
    const cases: Array<[string, (req: IncomingRequest) => Buffer]> = [
      [
        "invalid UTF-8 in a <text> body",
        (req) =>
          Buffer.concat([
            Buffer.from(`${open(req)}<data><text>bad `),
            Buffer.from([0xff, 0xfe, 0xc3]),
            Buffer.from(" bytes</text></data></resp></iq>"),
          ]),
      ],
      [
        "invalid UTF-8 in a header value",
        (req) =>
          Buffer.concat([
            Buffer.from(`${open(req)}<headers xmlns='${NS_SHIM}'><header name='X-Bad'>`),
            Buffer.from([0xc3, 0x28]),
            Buffer.from("</header></headers></resp></iq>"),
          ]),
      ],
      [
        "a NUL in a header value",
        (req) => Buffer.from(`${open(req)}<headers xmlns='${NS_SHIM}'><header name='X-Bad'>a\u0000b</header></headers></resp></iq>`),
      ],
      [
        "a NUL as a character reference",
        (req) => Buffer.from(`${open(req)}<headers xmlns='${NS_SHIM}'><header name='X-Bad'>a&#0;b</header></headers></resp></iq>`),
      ],
      ["a lone surrogate as a character reference", (req) => Buffer.from(`${open(req)}<data><text>a&#xD800;b</text></data></resp></iq>`)],
    ];
    for (const [what, bytes] of cases) {
      hostileCase(`${what}: the server closes the device's stream, the client gets 504 at the deadline`, async () => {
        const grew = await snapshot();
        const { reply, req } = await ask(hostile, 1000);
        await hostile.sendRaw(bytes(req)).catch(() => undefined);
        await cutOff("not-well-formed");
        await reconnectHostile();
        await expectError(reply, 504, "GW_DEVICE_TIMEOUT");
        await grew({ timeouts: 1 });
      });
    }
  });

  it("leaves no stream route or parked chunk behind once the deadlines have passed", async () => {
    let last = 0;
    const gone = await pollUntil("stream routes expired", async () => (last = await keyCount("stream:*", "parked:*")) === 0, {
      timeoutMs: BYSTANDER_TIMEOUT_MS + 10_000,
    }).catch(() => false);
    assert.ok(gone, `${last} stream routes or parked lists left`);
    assert.deepEqual(await counts(), ZERO);
  });
});
