// What the gateway does with every kind of device reply: stanza errors, malformed and spoofed replies,
// chunk streams in any order, late and duplicate answers. A scripted XMPP peer plays the device.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NS_HTTP, NS_SHIM } from "../../lib/xep0332/constants.js";
import { el, type XmlElement } from "../../lib/xep0332/xml.js";
import { NS_DISCO_INFO, NS_PING } from "../../lib/xmpp/disco.js";
import { startFleet } from "../helpers/fleet.js";
import { echoDevice } from "../helpers/echo-device.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";
import { chunk, iqError, resp, result, textBody } from "../helpers/stanzas.js";
import { startPeer, type IncomingRequest, type Peer } from "../helpers/xmpp-peer.js";

describe("device replies", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let peer: Peer;
  let intruder: Peer;

  async function dropped(reason: string): Promise<number> {
    const metric = await gw.gateway.metrics.repliesDropped.get();
    return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
  }

  /** Starts a client request to the peer device and hands over the IQ the peer received. */
  async function ask(path = "/x", init: RequestInit = {}): Promise<{ reply: Promise<Response>; req: IncomingRequest }> {
    const reply = fetch(`${gw.url}/devices/peer1${path}`, init);
    reply.catch(() => undefined);
    return { reply, req: await peer.nextRequest() };
  }

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater("gateway", await startGateway(stack));
    peer = teardown.stopLater("peer", await startPeer(stack.prosody, "peer1"));
    intruder = teardown.stopLater("intruder", await startPeer(stack.prosody, "intruder"));
  });
  after(() => teardown.run());

  it("sends XEP-0332 requests from the component to the device's full JID, offering only inline and chunked bodies", async () => {
    const { reply, req } = await ask("/BULB/ON?x=1", { method: "POST", body: "on", headers: { "content-type": "text/plain" } });
    assert.equal(req.from, "gateway.localhost");
    const payload = req.stanza.getChild("req", NS_HTTP);
    assert.ok(payload, "no <req>");
    assert.equal(payload.attrs.method, "POST");
    assert.equal(payload.attrs.resource, "/BULB/ON?x=1");
    assert.equal(payload.attrs.version, "1.1");
    assert.deepEqual([payload.attrs.sipub, payload.attrs.ibb, payload.attrs.jingle], ["false", "false", "false"]);
    assert.equal(payload.getChild("data")?.getChildText("text"), "on");
    await peer.send(result(req, resp("200", ...textBody("done"))));
    assert.equal(await (await reply).text(), "done");
  });

  const stanzaErrors: Array<[string, string, number, string]> = [
    ["auth", "forbidden", 403, "GW_DEVICE_ERROR"],
    ["cancel", "item-not-found", 404, "GW_DEVICE_ERROR"],
    ["modify", "bad-request", 400, "GW_DEVICE_ERROR"],
    ["cancel", "feature-not-implemented", 501, "GW_DEVICE_ERROR"],
    ["wait", "resource-constraint", 429, "GW_DEVICE_ERROR"],
    ["cancel", "internal-server-error", 500, "GW_DEVICE_ERROR"],
    ["cancel", "gone", 502, "GW_DEVICE_ERROR"],
    ["cancel", "constructor", 502, "GW_DEVICE_ERROR"], // a name found on Object.prototype once crashed the gateway
    ["cancel", "service-unavailable", 503, "GW_DEVICE_OFFLINE"],
  ];
  for (const [type, condition, status, code] of stanzaErrors) {
    it(`maps a <${condition}/> stanza error to ${status} ${code} (XEP-0086)`, async () => {
      const { reply, req } = await ask();
      await peer.send(iqError(req, condition, type));
      const res = await reply;
      assert.equal(res.status, status);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, code);
    });
  }

  const malformed: Array<[string, () => XmlElement | undefined]> = [
    ["a non-numeric statusCode", () => resp("abc")],
    ["an out-of-range statusCode", () => resp("700")],
    ["an interim 1xx status", () => resp("101")],
    ["no <resp> at all", () => undefined],
    ["an unknown body form", () => resp("200", el("data", {}, el("mystery", {})))],
    ["invalid base64", () => resp("200", el("data", {}, el("base64", {}, "@@@not-base64")))],
    [
      "a header with CR/LF in its value",
      () => resp("200", el("headers", { xmlns: NS_SHIM }, el("header", { name: "X-Evil" }, "a\r\nSet-Cookie: stolen=1"))),
    ],
    ["the wrong namespace", () => el("resp", { xmlns: "urn:example:other", version: "1.1", statusCode: "200" })],
  ];
  for (const [what, payload] of malformed) {
    it(`answers 502 GW_BAD_DEVICE_REPLY for a reply with ${what}, and counts it`, async () => {
      const before = await dropped("malformed");
      const { reply, req } = await ask();
      await peer.send(result(req, payload()));
      const res = await reply;
      assert.equal(res.status, 502);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, "GW_BAD_DEVICE_REPLY");
      assert.equal(await dropped("malformed"), before + 1);
    });
  }

  it("ignores a reply with the right id from another JID: the true reply still wins", async () => {
    const before = await dropped("spoofed");
    const { reply, req } = await ask("/secret");
    await intruder.send(result(req, resp("200", ...textBody("forged"))));
    await pollUntil("spoofed reply counted", async () => (await dropped("spoofed")) === before + 1, { timeoutMs: 15_000 });
    await peer.send(result(req, resp("200", ...textBody("genuine"))));
    const res = await reply;
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "genuine");
  });

  it("reassembles a chunked reply whose chunks come out of order, some before the IQ", async () => {
    const body = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
    const { reply, req } = await ask("/big");
    const parts = [body.subarray(0, 1000), body.subarray(1000, 2000), body.subarray(2000)];
    const part = (nr: number) => chunk(req.from, "s1", nr, parts[nr] as Buffer, nr === 2);
    await peer.send(part(2));
    await peer.send(part(0));
    await peer.send(result(req, resp("200", el("data", {}, el("chunkedBase64", { streamId: "s1" })))));
    await peer.send(part(1));
    const res = await reply;
    assert.equal(res.status, 200);
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(body));
  });

  it("fails a chunk stream with a gap or a duplicate with 502, and tells the device to stop", async () => {
    const { reply, req } = await ask("/broken-stream");
    await peer.send(result(req, resp("200", el("data", {}, el("chunkedBase64", { streamId: "s2" })))));
    await peer.send(chunk(req.from, "s2", 0, "AAAA"));
    await peer.send(chunk(req.from, "s2", 0, "AAAA"));
    const res = await reply;
    assert.equal(res.status, 502);
    await pollUntil("close sent", () => peer.received.some((s) => s.getChild("close", NS_HTTP)?.attrs.streamId === "s2"), {
      timeoutMs: 15_000,
    });
  });

  it("answers 504 GW_DEVICE_TIMEOUT at the deadline (X-Gateway-Timeout), and counts the late reply", async () => {
    const before = await dropped("late");
    const { reply, req } = await ask("/slow", { headers: { "X-Gateway-Timeout": "300" } });
    const res = await reply;
    assert.equal(res.status, 504);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "GW_DEVICE_TIMEOUT");
    await peer.send(result(req, resp("200", ...textBody("too late"))));
    await pollUntil("late reply counted", async () => (await dropped("late")) === before + 1, { timeoutMs: 15_000 });
    assert.equal(gw.gateway.pending.size, 0);
  });

  it("counts a second reply to the same request as a duplicate, and an unknown id as unknown", async () => {
    const dup = await dropped("duplicate");
    const unknown = await dropped("unknown");
    const { reply, req } = await ask();
    await peer.send(result(req, resp("200", ...textBody("first"))));
    assert.equal(await (await reply).text(), "first");
    await peer.send(result(req, resp("200", ...textBody("second"))));
    await peer.send(result({ id: "never-sent", from: req.from }, resp("200")));
    await pollUntil("drops counted", async () => (await dropped("duplicate")) === dup + 1 && (await dropped("unknown")) === unknown + 1, {
      timeoutMs: 15_000,
    });
  });

  it("answers disco#info with urn:xmpp:http, and pings, on the component", async () => {
    const info = await peer.query("gateway.localhost", el("query", { xmlns: NS_DISCO_INFO }));
    const features = info
      .getChild("query", NS_DISCO_INFO)
      ?.getChildren("feature")
      .map((f) => f.attrs.var as string);
    assert.ok(features?.includes(NS_HTTP), `features: ${JSON.stringify(features)}`);
    const pong = await peer.query("gateway.localhost", el("ping", { xmlns: NS_PING }));
    assert.equal(pong.attrs.type, "result");
  });

  it("has the device agent answer disco#info with urn:xmpp:http and XEP-0199 pings", async () => {
    const fleet = await startFleet(stack.prosody, ["disco-dev"], echoDevice);
    try {
      const info = await peer.query("disco-dev@localhost/agent", el("query", { xmlns: NS_DISCO_INFO }));
      const features = info
        .getChild("query", NS_DISCO_INFO)
        ?.getChildren("feature")
        .map((f) => f.attrs.var as string);
      assert.ok(features?.includes(NS_HTTP));
      const pong = await peer.query("disco-dev@localhost/agent", el("ping", { xmlns: NS_PING }));
      assert.equal(pong.attrs.type, "result");
      // Requests from anyone but the gateway are refused.
      const refused = await peer
        .query("disco-dev@localhost/agent", el("req", { xmlns: NS_HTTP, method: "GET", resource: "/", version: "1.1" }))
        .catch((e: { condition?: string }) => e);
      assert.equal((refused as { condition?: string }).condition, "forbidden");
    } finally {
      await fleet.stop();
    }
  });
});
