// Two gateways on one ejabberd component domain. ejabberd spreads the domain's stanzas over both
// connections, so a reply it routes to one of them in the instant that connection closes is lost. When an
// instance's component connection closes it says so on the reply bus, and every other instance sends again
// what may be sent again: an idempotent request (RFC 9110 §9.2.2) that went whole in its IQ and whose reply
// has not started. A scripted device stands in for the lost reply by leaving the first IQ unanswered.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { NS_HTTP } from "../../lib/xep0332/constants.js";
import { MAX_RESENDS } from "../../gateway/xmpp/exchange.js";
import type { EjabberdServer } from "../../local-stack/ejabberd.js";
import { pollUntil } from "../../local-stack/ports.js";
import type { RedisServer } from "../../local-stack/redis.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startEjabberdStack, Teardown } from "../helpers/stack.js";
import { chunk, chunkedHead, result, textReply } from "../helpers/stanzas.js";
import { startPeer, type IncomingRequest, type Peer } from "../helpers/xmpp-peer.js";

const DEVICE = "resend-dev";

describe("requests sent again when another instance's component connection closes (ejabberd)", () => {
  const teardown = new Teardown();
  let redis: RedisServer;
  let ejabberd: EjabberdServer;
  let peer: Peer;
  let owner: RunningGateway;
  const prefix = `rs-${randomBytes(3).toString("hex")}:`;
  let departures = 0;

  /** Another instance on the same domain and key space, online; the test stops it to close its connection. */
  async function otherInstance(): Promise<RunningGateway> {
    departures++;
    return startGateway({ redis, prosody: ejabberd }, { REDIS_KEY_PREFIX: prefix, GATEWAY_INSTANCE_ID: `rs-other-${departures}` });
  }

  async function counter(
    gw: RunningGateway,
    get: (m: RunningGateway["gateway"]["metrics"]) => {
      get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }>;
    },
    labels: Record<string, string> = {},
  ): Promise<number> {
    const metric = await get(gw.gateway.metrics).get();
    return metric.values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((sum, v) => sum + v.value, 0);
  }

  /** A client request through the owner instance, and the IQ the device received for it. */
  async function ask(path: string, init: RequestInit = {}): Promise<{ reply: Promise<Response>; req: IncomingRequest }> {
    const reply = fetch(`${owner.url}/devices/${DEVICE}${path}`, init);
    reply.catch(() => undefined);
    return { reply, req: await peer.nextRequest(15_000) };
  }

  const httpRequests = () =>
    peer.received.filter((s) => s.name === "iq" && s.attrs.type === "set" && s.getChild("req", NS_HTTP) !== undefined).length;

  before(async () => {
    ({ redis, ejabberd } = await startEjabberdStack(teardown));
    owner = teardown.stopLater(
      "owner gateway",
      await startGateway(
        { redis, prosody: ejabberd },
        {
          REDIS_KEY_PREFIX: prefix,
          GATEWAY_INSTANCE_ID: "rs-owner",
          // A PUT of 1 KiB goes as chunks after its IQ: such a request is never sent again.
          GATEWAY_CHUNK_THRESHOLD_BYTES: "512",
        },
      ),
    );
    peer = teardown.stopLater("device", await startPeer(ejabberd, DEVICE));
  });
  after(() => teardown.run());

  it("sends a waiting GET again with the same IQ id once the other connection has closed; the first reply answers, the second is a duplicate", async () => {
    const other = await otherInstance();
    const { reply, req: first } = await ask("/TEMPERATURE/");
    // The device never answers `first`: its reply is the one lost at the closing connection.
    await other.stop();
    const again = await peer.nextRequest(15_000);
    assert.equal(again.id, first.id, "the same IQ id, so that either reply finishes the exchange");
    assert.equal(again.stanza.getChild("req", NS_HTTP)?.attrs.method, "GET");
    assert.equal(again.stanza.getChild("req", NS_HTTP)?.attrs.resource, "/TEMPERATURE/");
    await peer.send(textReply(again, "21.5"));
    const res = await reply;
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "21.5");
    assert.equal(await counter(owner, (m) => m.iqResends), 1);

    const duplicates = await counter(owner, (m) => m.repliesDropped, { reason: "duplicate" });
    await peer.send(textReply(first, "stale"));
    await pollUntil(
      "the first reply dropped as a duplicate",
      async () => (await counter(owner, (m) => m.repliesDropped, { reason: "duplicate" })) > duplicates,
      { timeoutMs: 15_000 },
    );
  });

  it("never sends again a POST, a request with an Idempotency-Key, a request whose body went as chunks, or one whose reply is already streaming", async () => {
    const other = await otherInstance();
    const before = httpRequests();
    const post = await ask("/BULB/ON", { method: "POST", body: "on", headers: { "content-type": "text/plain" } });
    const put = await ask("/FIRMWARE", {
      method: "PUT",
      body: Buffer.alloc(1024, 7),
      headers: { "content-type": "application/octet-stream" },
    });
    assert.equal(
      put.req.stanza.getChild("req", NS_HTTP)?.getChild("data")?.getChild("chunkedBase64")?.name,
      "chunkedBase64",
      "the PUT's body goes as chunks",
    );
    // Idempotent by its method, but the key promises the device sees it at most once (README, "Idempotency-Key").
    const keyed = await ask("/SCHEDULE/7", { method: "DELETE", headers: { "idempotency-key": `k-${randomBytes(4).toString("hex")}` } });
    const streaming = await ask("/LOG");
    // The reply's head announces a chunked body; the owner then waits for that stream.
    await peer.send(result(streaming.req, chunkedHead("log-1", "text/plain")));
    await pollUntil("the owner receiving the streamed reply", () => owner.gateway.pending.get(streaming.req.id)?.streamId === "log-1", {
      timeoutMs: 15_000,
      intervalMs: 5,
    });
    const get = await ask("/TEMPERATURE/");

    await other.stop();
    // Resends go out in the order the requests were sent: had any of the others been sent again, the device
    // would have received it before this one.
    const again = await peer.nextRequest(15_000);
    assert.equal(again.id, get.req.id, "only the GET is sent again");
    assert.equal(httpRequests() - before, 6, "POST, PUT, keyed DELETE, the streamed GET, the GET, and the GET again");

    await peer.send(textReply(post.req, "bulb on"));
    await peer.send(textReply(put.req, "stored"));
    await peer.send(textReply(keyed.req, "deleted"));
    await peer.send(chunk(streaming.req.from, "log-1", 0, Buffer.from("line 1\n"), true));
    await peer.send(textReply(again, "22.0"));
    const answers = await Promise.all(
      [post.reply, put.reply, keyed.reply, streaming.reply, get.reply].map(async (r) => {
        const res = await r;
        return `${res.status} ${await res.text()}`;
      }),
    );
    assert.deepEqual(answers, ["200 bulb on", "200 stored", "200 deleted", "200 line 1\n", "200 22.0"]);
  });

  it(`sends a request again at most ${MAX_RESENDS} times, once per departure`, async () => {
    const resends = await counter(owner, (m) => m.iqResends);
    const first = await ask("/HUMIDITY/");
    for (let n = 1; n <= MAX_RESENDS; n++) {
      await (await otherInstance()).stop();
      assert.equal((await peer.nextRequest(15_000)).id, first.req.id, `sent again after departure ${n}`);
    }
    const second = await ask("/PRESSURE/");
    await (await otherInstance()).stop();
    // Resends go out in the order the requests were sent: a further copy of the first would come before this.
    assert.equal((await peer.nextRequest(15_000)).id, second.req.id, "the second request again, not the first");
    assert.equal(await counter(owner, (m) => m.iqResends), resends + MAX_RESENDS + 1);
    await peer.send(textReply(first.req, "40%"));
    await peer.send(textReply(second.req, "1013"));
    assert.equal(await (await first.reply).text(), "40%");
    assert.equal(await (await second.reply).text(), "1013");
  });
});
