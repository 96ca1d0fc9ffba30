// A legacy client's burst to one device: beyond the device's maxInFlight, requests wait their turn (FIFO
// per device, within their deadline) instead of being refused; only a full queue answers 429
// GW_DEVICE_BUSY. Both transports (XMPP through a device agent, HTTP pass-through to a legacy server) go
// through the same queue; the device never sees more than maxInFlight at once; a slot freed on one
// instance wakes a waiter on another (Redis pub/sub); a waiter whose client hangs up leaves the queue; the
// slot set's expiry is never shortened by a short request; device ids that differ only in case are one
// device (one registry entry, one in-flight limit, one idempotency space).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import type { Element } from "@xmpp/xml";
import { NS_HTTP } from "../../lib/xep0332/constants.js";
import { pollUntil } from "../../local-stack/ports.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import { listAll } from "../helpers/admin-listing.js";
import { registryChangeSeen, startGateway, startTwoGateways, type RunningGateway } from "../helpers/gateway.js";
import { startCountingDevice, type CountingDevice } from "../helpers/counting-device.js";
import { startStack, Teardown, type Stack, testComponents } from "../helpers/stack.js";
import { startPeer, textReply, type Peer } from "../helpers/xmpp-peer.js";

const ADMIN_TOKEN = "burst-admin-token-0123456";
const HOST_SUFFIX = "devices.test";

interface ErrorBody {
  error: { code: string };
}

type Transport = "xmpp" | "http";

type Device = CountingDevice;

/**
 * What the queue tests need of a device that holds requests: an HTTP server (countingDevice), or, over
 * XMPP, a scripted peer, which answers whichever instance asks (a device agent answers its one gateway).
 */
interface HoldingDevice {
  /** Resources of the requests that reached the device, in order. */
  readonly seen: string[];
  /** Requests at the device now, unanswered. */
  readonly held: number;
  /** Answers those held with `released {id}`. */
  releaseAll(): Promise<void>;
}

function httpHolding(dev: Device): HoldingDevice {
  return {
    get seen() {
      return [...dev.seen];
    },
    get held() {
      return dev.held.length;
    },
    releaseAll: () => {
      dev.releaseAll();
      return Promise.resolve();
    },
  };
}

function peerHolding(id: string, peer: Peer): HoldingDevice {
  const answered = new Set<string>();
  const requests = () => peer.received.filter((s: Element) => s.is("iq") && s.getChild("req", NS_HTTP) !== undefined);
  return {
    get seen() {
      return requests().map((s) => String(s.getChild("req", NS_HTTP)?.attrs.resource));
    },
    get held() {
      return requests().filter((s) => !answered.has(String(s.attrs.id))).length;
    },
    async releaseAll() {
      for (const s of requests()) {
        const iqId = String(s.attrs.id);
        if (answered.has(iqId)) continue;
        answered.add(iqId);
        await peer.send(textReply({ id: iqId, from: String(s.attrs.from) }, `released ${id}`));
      }
    },
  };
}

describe("a device's burst: waiting for its in-flight slots", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let a: RunningGateway;
  let b: RunningGateway;
  /** GATEWAY_DEVICE_QUEUE_MAX=3: the full queue. */
  let c: RunningGateway;
  const prefix = `burst-${randomBytes(3).toString("hex")}:`;
  const devices = new Map<string, Device>();

  /** A device by that id on the transport, registered with these settings; its server counts concurrency. */
  async function device(id: string, transport: Transport, settings: Partial<DeviceRecord> = {}): Promise<Device> {
    const d = await startCountingDevice({ prosody: stack.prosody, teardown, writer: a, readers: [b, c] }, id, transport, settings);
    devices.set(id, d);
    return d;
  }

  /** A device that holds `/hold…` requests until the test releases them, on either transport. */
  async function holding(id: string, transport: Transport, settings: Partial<DeviceRecord>): Promise<HoldingDevice> {
    if (transport === "http") return httpHolding(await device(id, "http", settings));
    const peer = teardown.stopLater(`peer ${id}`, await startPeer(stack.prosody, id));
    await a.gateway.registry.put({ id, transport: "xmpp", ...settings });
    await registryChangeSeen([b, c], id);
    const d = peerHolding(id, peer);
    peers.push(d);
    return d;
  }
  const peers: HoldingDevice[] = [];

  const waiting = async (g: RunningGateway) => (await g.gateway.metrics.deviceQueueWaiting.get()).values[0]?.value ?? 0;
  const refusals = async (g: RunningGateway, bound: string) =>
    (await g.gateway.metrics.deviceQueueRefusals.get()).values.find((v) => v.labels.bound === bound)?.value ?? 0;
  const slotsHeld = (id: string) => a.gateway.redis.client.zcard(a.gateway.redis.keys.deviceSlots(id));

  before(async () => {
    stack = teardown.stopLater(
      "stack",
      await startStack({
        prosody: {
          components: testComponents(3),
        },
      }),
    );
    const common = { REDIS_KEY_PREFIX: prefix, GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, GATEWAY_DEVICE_HOST_SUFFIX: HOST_SUFFIX };
    [a, b] = await startTwoGateways(stack, teardown, common);
    c = teardown.stopLater(
      "gateway C",
      await startGateway(stack, {
        ...common,
        GATEWAY_INSTANCE_ID: "c",
        GATEWAY_DEVICE_QUEUE_MAX: "3",
        XMPP_COMPONENT_DOMAIN: "gw3.localhost",
        XMPP_COMPONENT_SECRET: "s3",
      }),
    );
  });
  after(async () => {
    for (const d of devices.values()) d.openUp();
    for (const d of peers) await d.releaseAll().catch(() => undefined);
    await teardown.run();
  });

  for (const transport of ["http", "xmpp"] as const) {
    it(`${transport}: serves a 48-client burst (480 requests) to a device with maxInFlight 4, every answer 200 byte-exact, none 429`, async () => {
      const id = `burst-${transport}`;
      const dev = await device(id, transport, { maxInFlight: 4 });
      const clients = 48;
      const each = 10;
      const answers = await Promise.all(
        Array.from({ length: clients }, async (_, i) => {
          const got: Array<{ path: string; status: number; body: Buffer }> = [];
          for (let j = 0; j < each; j++) {
            const path = `/r/${i}/${j}`;
            const r = await fetch(`${a.url}/devices/${id}${path}`);
            got.push({ path, status: r.status, body: Buffer.from(await r.arrayBuffer()) });
          }
          return got;
        }),
      );
      const flat = answers.flat();
      assert.equal(flat.length, clients * each);
      const statuses = new Map<number, number>();
      for (const x of flat) statuses.set(x.status, (statuses.get(x.status) ?? 0) + 1);
      assert.deepEqual([...statuses], [[200, clients * each]], "every request answered 200");
      for (const x of flat) assert.ok(x.body.equals(Buffer.from(`${id} answers ${x.path}`)), `${x.path}: ${x.body.toString()}`);
      assert.ok(dev.most <= 4, `the device held ${dev.most} requests at once; maxInFlight is 4`);
      assert.equal(await refusals(a, "device"), 0);
      assert.equal(await waiting(a), 0, "nobody left waiting");
      await pollUntil("slots given back", async () => (await slotsHeld(id)) === 0, { timeoutMs: 5000 });
    });

    it(`${transport}: a full queue answers 429 GW_DEVICE_BUSY for exactly the overflow, and serves the rest`, async () => {
      const id = `full-${transport}`;
      const dev = await holding(id, transport, { maxInFlight: 2 });
      const before = await refusals(c, "device");
      const get = (n: number) => fetch(`${c.url}/devices/${id}/hold/${n}`);
      const inFlight = [get(0), get(1)];
      await pollUntil("two requests held by the device", () => dev.held === 2, { timeoutMs: 10_000 });
      // One after the other, so their order in the queue is known.
      const queued: Array<Promise<Response>> = [];
      for (const n of [2, 3, 4]) {
        queued.push(get(n));
        await pollUntil(`${n - 1} waiting on C`, async () => (await waiting(c)) === n - 1, { timeoutMs: 10_000 });
      }
      const overflow = await Promise.all([get(5), get(6), get(7), get(8)]);
      for (const r of overflow) {
        assert.equal(r.status, 429);
        assert.equal(((await r.json()) as ErrorBody).error.code, "GW_DEVICE_BUSY");
        assert.ok(Number(r.headers.get("retry-after")) >= 1, "Retry-After as for any GW_DEVICE_BUSY");
      }
      assert.equal((await refusals(c, "device")) - before, 4, "gateway_device_queue_refusals_total{bound=device}");
      assert.equal(dev.held, 2, "the device holds 2 and no more");
      // Released two at a time: the device never holds more than its 2, and the waiters follow in order.
      const all = Promise.all([...inFlight, ...queued]);
      let rounds = 0;
      while (dev.seen.length < 5) {
        assert.ok(dev.held <= 2, `the device holds ${dev.held}; maxInFlight is 2`);
        await dev.releaseAll();
        const reached = dev.seen.length;
        await pollUntil("the next waiters reach the device", () => dev.seen.length > reached || reached === 5, { timeoutMs: 10_000 });
        assert.ok(++rounds <= 5);
      }
      await dev.releaseAll();
      for (const r of await all) assert.deepEqual([r.status, await r.text()], [200, `released ${id}`]);
      assert.deepEqual(dev.seen.slice(0, 2).sort(), ["/hold/0", "/hold/1"]);
      // Two slots freed at once go to the first two waiters (which may reach the device in either order).
      assert.deepEqual([dev.seen.slice(2, 4).sort(), dev.seen[4]], [["/hold/2", "/hold/3"], "/hold/4"], "first come, first served");
      assert.equal(await waiting(c), 0);
    });

    it(`${transport}: a slot freed on instance A wakes a request waiting on instance B (pub/sub, not the fallback at the slot's deadline)`, async () => {
      const id = `cross-${transport}`;
      // Slots last 600 s (+1 s): a waiter woken by the fallback retry at the earliest slot deadline would
      // wait that long, far beyond the bounded polls below.
      const dev = await holding(id, transport, { maxInFlight: 1, timeoutMs: 600_000 });
      const first = fetch(`${a.url}/devices/${id}/hold/a`);
      await pollUntil("A's request held by the device", () => dev.held === 1, { timeoutMs: 10_000 });
      const second = fetch(`${b.url}/devices/${id}/hold/b`);
      await pollUntil("B's request waiting", async () => (await waiting(b)) === 1, { timeoutMs: 10_000 });
      assert.deepEqual(dev.seen, ["/hold/a"], "B's request waits, not at the device");
      const ttl = await a.gateway.redis.client.pttl(a.gateway.redis.keys.deviceSlots(id));
      assert.ok(ttl > 500_000, `the slot lasts its request's 600 s (PTTL ${ttl})`);
      await dev.releaseAll();
      assert.equal(await (await first).text(), `released ${id}`);
      await pollUntil("B's request reached the device once A's slot was freed", () => dev.held === 1, { timeoutMs: 10_000 });
      assert.deepEqual(dev.seen, ["/hold/a", "/hold/b"]);
      await dev.releaseAll();
      const r = await second;
      assert.deepEqual([r.status, await r.text()], [200, `released ${id}`]);
      assert.equal(await waiting(b), 0);
    });

    it(`${transport}: a request still waiting at its deadline is 504 GW_DEVICE_QUEUE_TIMEOUT, never reaches the device, and frees its Idempotency-Key`, async () => {
      const id = `late-${transport}`;
      const dev = await holding(id, transport, { maxInFlight: 1 });
      const first = fetch(`${a.url}/devices/${id}/hold/first`);
      await pollUntil("first request held", () => dev.held === 1, { timeoutMs: 10_000 });
      const post = (headers: Record<string, string>) =>
        fetch(`${a.url}/devices/${id}/hold/keyed`, { method: "POST", body: "on", headers: { "Idempotency-Key": "late-1", ...headers } });
      const late = await post({ "X-Gateway-Timeout": "300" });
      assert.equal(late.status, 504);
      assert.equal(((await late.json()) as ErrorBody).error.code, "GW_DEVICE_QUEUE_TIMEOUT");
      assert.equal(await waiting(a), 0);
      await dev.releaseAll();
      assert.equal(await (await first).text(), `released ${id}`);
      assert.deepEqual(dev.seen, ["/hold/first"], "the late request never reached the device");
      // Over XMPP the key is honoured: the device was not reached, so the retry goes to it (the HTTP
      // device answers a POST at once; the XMPP peer holds it until released).
      const retry = post({});
      if (transport === "xmpp") {
        await pollUntil("the retry reached the device", () => dev.held === 1, { timeoutMs: 10_000 });
        await dev.releaseAll();
      }
      const r = await retry;
      assert.equal(r.status, 200);
      assert.match(await r.text(), new RegExp(`^(released ${id}|${id} actuation 1)$`));
      assert.deepEqual(dev.seen, ["/hold/first", "/hold/keyed"]);
    });

    it(`${transport}: a waiter whose client hangs up leaves the queue and never reaches the device`, async () => {
      const id = `quit-${transport}`;
      const dev = await device(id, transport, { maxInFlight: 1 });
      const first = fetch(`${a.url}/devices/${id}/hold/first`);
      await pollUntil("first request held", () => dev.held.length === 1, { timeoutMs: 10_000 });
      const quit = new AbortController();
      const leaving = fetch(`${a.url}/devices/${id}/hold/leaving`, { signal: quit.signal }).catch(() => "aborted");
      await pollUntil("one waiting", async () => (await waiting(a)) === 1, { timeoutMs: 10_000 });
      quit.abort();
      assert.equal(await leaving, "aborted");
      await pollUntil("the waiter left the queue", async () => (await waiting(a)) === 0, { timeoutMs: 10_000 });
      dev.releaseAll();
      assert.equal(await (await first).text(), `released ${id}`);
      await pollUntil("slot set empty", async () => (await slotsHeld(id)) === 0, { timeoutMs: 10_000 });
      // The next request is served at once: the one that left holds nothing.
      dev.openUp();
      assert.equal(await (await fetch(`${a.url}/devices/${id}/after`)).text(), `${id} answers /after`);
      assert.deepEqual(dev.seen, ["/hold/first", "/after"], "the request that left never reached the device");
    });
  }

  it("a short request (X-Gateway-Timeout: 1) does not shorten the slot set's life under a long request's slot", async () => {
    const id = "expiry-http";
    const dev = await device(id, "http", { maxInFlight: 4, timeoutMs: 600_000 });
    const long = fetch(`${a.url}/devices/${id}/hold/long`);
    await pollUntil("long request held", () => dev.held.length === 1, { timeoutMs: 10_000 });
    const short = await fetch(`${a.url}/devices/${id}/quick`, { headers: { "X-Gateway-Timeout": "1" } });
    await short.arrayBuffer(); // whatever it got (likely 504): its slot was taken and given back
    const key = a.gateway.redis.keys.deviceSlots(id);
    // The short one's slot stays parked for the device's next request a moment (GATEWAY_DEVICE_SLOT_REUSE_MS), then goes.
    await pollUntil("the short request's slot given back", async () => (await a.gateway.redis.client.zcard(key)) === 1, {
      timeoutMs: 10_000,
    });
    const ttl = await a.gateway.redis.client.pttl(key);
    assert.ok(ttl > 500_000, `the set must live as long as the long request's slot (600 s), PTTL is ${ttl} ms`);
    // The slot is scored on Redis's clock: its deadline is Redis's now + 600 s + grace.
    const [seconds, micros] = await a.gateway.redis.client.time();
    const redisNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const [, score] = await a.gateway.redis.client.zrange(key, 0, 0, "WITHSCORES");
    const left = Number(score) - redisNow;
    // Its request's 600 s, the grace (1 s) and the reuse window (1 s by default).
    assert.ok(left > 500_000 && left <= 602_000, `slot deadline ${left} ms from Redis's now`);
    dev.releaseAll();
    assert.equal((await long).status, 200);
  });

  describe("device ids that differ only in case are one device", () => {
    it("shares one in-flight limit: maxInFlight 1 with dev-17, DEV-17 and Dev-17 at once, the device never sees two", async () => {
      const dev = await device("dev-17", "http", { maxInFlight: 1 });
      const spellings = ["dev-17", "DEV-17", "Dev-17"];
      const answers = await Promise.all(
        spellings.flatMap((spelling) =>
          Array.from({ length: 4 }, async (_, n) => {
            const r = await fetch(`${a.url}/devices/${spelling}/x/${n}`);
            return [r.status, await r.text()] as const;
          }),
        ),
      );
      for (const [status, text] of answers) {
        assert.equal(status, 200, text);
        assert.match(text, /^dev-17 answers \/x\/\d$/);
      }
      assert.equal(dev.most, 1, `the device held ${dev.most} at once; maxInFlight is 1 for every spelling`);
    });

    it("shares one idempotency space: a retry with the same key in another case is answered from the first", async () => {
      const dev = await device("bulb-17", "xmpp"); // Idempotency-Key is honoured on the XMPP path
      const post = (spelling: string) =>
        fetch(`${a.url}/devices/${spelling}/on`, { method: "POST", headers: { "Idempotency-Key": "k-17" }, body: "on" });
      assert.equal(await (await post("bulb-17")).text(), "bulb-17 actuation 1");
      assert.equal(await (await post("BULB-17")).text(), "bulb-17 actuation 1", "not a second actuation");
      assert.equal(dev.actuations, 1);
    });

    it("Host addressing in any case reaches the same device", async () => {
      await device("host-17", "http");
      const answer = await new Promise<string>((resolve, reject) => {
        const req = http.request(`${a.url}/x`, { headers: { Host: `HOST-17.${HOST_SUFFIX}` } }, (res) => {
          const parts: Buffer[] = [];
          res.on("data", (p: Buffer) => parts.push(p));
          res.on("end", () => resolve(`${res.statusCode} ${Buffer.concat(parts).toString()}`));
        });
        req.on("error", reject);
        req.end();
      });
      assert.equal(answer, "200 host-17 answers /x");
    });

    it("entries written with capitals before ids were canonical are moved to their lower-case id (as at start)", async () => {
      const redis = a.gateway.redis.client;
      const keys = a.gateway.redis.keys;
      const legacy = (id: string, address: string) =>
        JSON.stringify({ id, transport: "http", httpTarget: "http://10.9.9.9:80", legacyAddress: address, maxInFlight: 7 });
      await redis.set(keys.device("OLD-19"), legacy("OLD-19", "10.9.9.19:80"));
      await redis.set(keys.legacyIndex("10.9.9.19:80"), "OLD-19");
      await redis.set(keys.device("DUP-19"), legacy("DUP-19", "10.9.9.20:80"));
      await redis.set(keys.legacyIndex("10.9.9.20:80"), "DUP-19");
      await redis.sadd(keys.devices(), "OLD-19", "DUP-19");
      await a.gateway.registry.put({ id: "dup-19", transport: "xmpp" });
      assert.deepEqual(await a.gateway.registry.canonicalizeIds(), { renamed: ["OLD-19"], dropped: ["DUP-19"] });
      assert.deepEqual(
        [(await a.gateway.registry.get("Old-19"))?.id, (await a.gateway.registry.get("old-19"))?.maxInFlight],
        ["old-19", 7],
      );
      assert.equal((await a.gateway.registry.findByLegacyAddress("10.9.9.19:80"))?.id, "old-19", "the legacy address moved with it");
      assert.equal(
        (await a.gateway.registry.get("dup-19"))?.transport,
        "xmpp",
        "the lower-case entry, which lookups found all along, stays",
      );
      assert.equal(await a.gateway.registry.findByLegacyAddress("10.9.9.20:80"), undefined);
      assert.deepEqual(
        [
          await redis.exists(keys.device("OLD-19"), keys.device("DUP-19")),
          await redis.smismember(keys.devices(), "OLD-19", "DUP-19", "old-19"),
        ],
        [0, [0, 0, 1]],
      );
      assert.deepEqual(await a.gateway.registry.canonicalizeIds(), { renamed: [], dropped: [] }, "nothing left to move");
    });

    it("admin API: created as DEV-18, it is read, replaced and deleted as dev-18 or Dev-18, one entry throughout", async () => {
      const admin = (method: string, spelling: string, body?: unknown) =>
        fetch(`${a.url}/admin/devices/${spelling}`, {
          method,
          headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        });
      const created = await admin("PUT", "DEV-18", { id: "Dev-18", transport: "xmpp", maxInFlight: 2 });
      assert.equal(created.status, 201);
      assert.equal(((await created.json()) as DeviceRecord).id, "dev-18", "stored under the canonical id");
      for (const spelling of ["dev-18", "Dev-18", "DEV-18"]) {
        const r = await admin("GET", spelling);
        assert.equal(r.status, 200, spelling);
        assert.equal(((await r.json()) as DeviceRecord).id, "dev-18");
      }
      assert.equal((await admin("PUT", "dev-18", { transport: "xmpp", maxInFlight: 3 })).status, 200, "replaced, not a second entry");
      const list = await listAll(a.url, ADMIN_TOKEN);
      assert.deepEqual(
        list.filter((d) => d.id.toLowerCase() === "dev-18").map((d) => [d.id, d.maxInFlight]),
        [["dev-18", 3]],
      );
      assert.equal((await b.gateway.registry.get("DEV-18"))?.maxInFlight, 3, "the registry answers any spelling");
      assert.equal((await admin("DELETE", "Dev-18")).status, 204);
      assert.equal((await admin("GET", "dev-18")).status, 404);
    });
  });
});
