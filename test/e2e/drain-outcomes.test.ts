// SIGTERM and what the drain does with exchanges it cannot finish: an IQ already delivered ends "outcome
// unknown" (504 GW_OUTCOME_UNKNOWN), which keeps its Idempotency-Key, so a retry on another instance never
// actuates the device a second time; and asynchronous (202-accepted) exchanges are waited for like HTTP
// requests in flight, their outcome stored where every instance reads it.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NS_HTTP } from "../../lib/xep0332/constants.js";
import { el } from "../../lib/xep0332/xml.js";
import { pollUntil, waitForPortClosed } from "../../local-stack/ports.js";
import { gatewayEnv, registryChangeSeen, startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack, testComponents } from "../helpers/stack.js";
import { startPeer, textReply, type Peer } from "../helpers/xmpp-peer.js";

/** How many XEP-0332 requests the peer has received so far. */
function requestsSeen(peer: Peer): number {
  return peer.received.filter((s) => s.name === "iq" && s.getChild("req", NS_HTTP)).length;
}

describe("drain: exchanges it cannot finish", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let prefix: string;
  /** The instance that stays: retries and GET /requests/{id} go here. */
  let other: RunningGateway;
  let peer: Peer;

  /** An instance sharing `other`'s key space, with a short drain bound, that each test stops. */
  async function doomed(drainTimeoutMs: number): Promise<RunningGateway> {
    return startGateway(stack, {
      REDIS_KEY_PREFIX: prefix,
      GATEWAY_DRAIN_TIMEOUT_MS: String(drainTimeoutMs),
      GATEWAY_INSTANCE_ID: `doomed-${drainTimeoutMs}-${Date.now()}`,
      XMPP_COMPONENT_DOMAIN: "gw2.localhost",
      XMPP_COMPONENT_SECRET: "s2",
    });
  }

  before(async () => {
    // One component each: the instance that stays, and the one each test stops (one at a time).
    stack = teardown.stopLater(
      "stack",
      await startStack({
        prosody: {
          components: testComponents(2),
        },
      }),
    );
    prefix = gatewayEnv(stack).REDIS_KEY_PREFIX as string;
    other = teardown.stopLater("other", await startGateway(stack, { REDIS_KEY_PREFIX: prefix, GATEWAY_INSTANCE_ID: "other" }));
    peer = teardown.stopLater("peer", await startPeer(stack.prosody, "drain1"));
  });
  after(() => teardown.run());

  it("an IQ delivered and unanswered at the drain bound ends 504 GW_OUTCOME_UNKNOWN, and its key is kept: a retry on another instance does not reach the device", async () => {
    const gw = await doomed(300);
    const headers = { "idempotency-key": "drain-sync-1", "content-type": "text/plain" };
    const first = fetch(`${gw.url}/devices/drain1/switch`, { method: "POST", body: "on", headers });
    first.catch(() => undefined);
    await peer.nextRequest(); // delivered: the device may act on it
    const seen = requestsSeen(peer);
    await gw.stop();
    const answer = await first;
    assert.equal(answer.status, 504);
    assert.equal(((await answer.json()) as { error: { code: string } }).error.code, "GW_OUTCOME_UNKNOWN");

    // The retry's own deadline is short: should it reach the device, it ends in a timeout, not a hang.
    const retry = await fetch(`${other.url}/devices/drain1/switch`, {
      method: "POST",
      body: "on",
      headers: { ...headers, "x-gateway-timeout": "3000" },
    });
    assert.equal(retry.status, 504);
    assert.equal(((await retry.json()) as { error: { code: string } }).error.code, "GW_OUTCOME_UNKNOWN", "the kept outcome, replayed");
    assert.equal(requestsSeen(peer), seen, "the retry reached the device a second time");
  });

  it("SIGTERM waits for a 202-accepted exchange in flight: the device's reply, given during the drain, is answered by another instance", async () => {
    const gw = await doomed(20_000);
    const accepted = await fetch(`${gw.url}/devices/drain1/status`, { method: "POST", body: "?", headers: { prefer: "respond-async" } });
    assert.equal(accepted.status, 202);
    const { requestId } = (await accepted.json()) as { requestId: string };
    const req = await peer.nextRequest();
    let stopped = false;
    const stopping = gw.stop().then(() => (stopped = true));
    // Draining: the listener is closed, no HTTP request is in flight; only the asynchronous exchange is.
    await waitForPortClosed(gw.gateway.http.port);
    assert.equal(stopped, false, "the instance stopped with an asynchronous exchange in flight");
    await peer.send(textReply(req, "all good"));
    await stopping;
    const result = await fetch(`${other.url}/requests/${requestId}`);
    assert.equal(result.status, 200);
    assert.equal(await result.text(), "all good");
  });

  it("a 202-accepted exchange still unanswered at the drain bound gets its outcome stored (504 GW_OUTCOME_UNKNOWN), and its key is kept", async () => {
    const gw = await doomed(300);
    const headers = { prefer: "respond-async", "idempotency-key": "drain-async-1" };
    const accepted = await fetch(`${gw.url}/devices/drain1/switch`, { method: "POST", body: "off", headers });
    assert.equal(accepted.status, 202);
    const { requestId } = (await accepted.json()) as { requestId: string };
    await peer.nextRequest();
    const seen = requestsSeen(peer);
    await gw.stop();
    const result = await fetch(`${other.url}/requests/${requestId}`);
    assert.equal(result.status, 504, "answered by the stored outcome, not still pending");
    assert.equal(((await result.json()) as { error: { code: string } }).error.code, "GW_OUTCOME_UNKNOWN");

    const retry = await fetch(`${other.url}/devices/drain1/switch`, {
      method: "POST",
      body: "off",
      headers: { "idempotency-key": "drain-async-1", "x-gateway-timeout": "3000" },
    });
    assert.equal(((await retry.json()) as { error: { code: string } }).error.code, "GW_OUTCOME_UNKNOWN");
    assert.equal(requestsSeen(peer), seen, "the retry reached the device a second time");
  });

  it("queued requests the drain did not get to stay queued, for the next instance the device announces itself to", async () => {
    const gw = await doomed(300);
    // Registered: an offline queue takes requests only for devices registered or seen before.
    await other.gateway.registry.put({ id: "drainq", transport: "xmpp" });
    await registryChangeSeen([gw], "drainq");
    const ids: string[] = [];
    for (const body of ["first", "second"]) {
      const accepted = await fetch(`${gw.url}/devices/drainq/switch`, { method: "POST", body, headers: { prefer: "respond-async" } });
      assert.equal(accepted.status, 202);
      ids.push(((await accepted.json()) as { requestId: string }).requestId);
    }
    const status = async (id: string) => ((await (await fetch(`${other.url}/requests/${id}`)).json()) as { status?: string }).status;
    await pollUntil(
      "both requests queued (the device is offline)",
      async () => (await status(ids[0] as string)) === "queued" && (await status(ids[1] as string)) === "queued",
    );

    // The device comes online and tells the doomed instance: it delivers the first, which is left unanswered.
    const device = teardown.stopLater("drainq", await startPeer(stack.prosody, "drainq"));
    await device.send(el("presence", { to: "gw2.localhost" }));
    await device.nextRequest();
    await gw.stop();

    const first = await fetch(`${other.url}/requests/${ids[0] as string}`);
    assert.equal(first.status, 504);
    assert.equal(((await first.json()) as { error: { code: string } }).error.code, "GW_OUTCOME_UNKNOWN");
    assert.equal(await status(ids[1] as string), "queued", "the second was not delivered, and still waits");

    // Announced to the instance that stays: it delivers the second.
    await device.send(el("presence", { to: "gateway.localhost" }));
    const second = await device.nextRequest();
    assert.equal(second.stanza.getChild("req", NS_HTTP)?.getChild("data")?.getChildText("text"), "second");
    await device.send(textReply(second, "second done"));
    const done = await pollUntil("the second's result", async () => {
      const res = await fetch(`${other.url}/requests/${ids[1] as string}`);
      return res.status === 200 ? res.text() : (await res.body?.cancel(), undefined);
    });
    assert.equal(done, "second done");
  });
});
