// Shadow mode against a device at its in-flight limit: the client's own exchange (over HTTP) and the copy
// sent over XMPP for comparison take the same device's slots. The client's answer must never wait for the
// copy: with maxInFlight 1 and a device whose XMPP side has not answered yet, the client already has its
// answer, and the copy is compared once it comes.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NS_HTTP } from "../../lib/xep0332/constants.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startDeviceServer, type DeviceServer } from "../helpers/http-device.js";
import { metricValue } from "../helpers/metrics.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";
import { startPeer, textReply, type Peer } from "../helpers/xmpp-peer.js";

async function comparisons(gw: RunningGateway, outcome: "match" | "mismatch"): Promise<number> {
  return metricValue(await gw.gateway.metrics.registry.metrics(), "gateway_shadow_comparisons_total", { outcome });
}

describe("shadow mode at a device's in-flight limit", { timeout: 60_000 }, () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let device: DeviceServer;
  let agent: Peer;

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater("gateway", await startGateway(stack));
    device = teardown.stopLater(
      "legacy device",
      await startDeviceServer((_req, res) => {
        res.setHeader("Content-Type", "text/plain");
        res.end("21.5");
      }),
    );
    agent = teardown.stopLater("agent", await startPeer(stack.prosody, "shadowy"));
    await gw.gateway.registry.put({ id: "shadowy", transport: "shadow", httpTarget: device.url, maxInFlight: 1 });
  });
  after(() => teardown.run());

  it("answers the client over HTTP while the XMPP copy is still unanswered, then compares", async () => {
    const before = await comparisons(gw, "match");
    // The agent holds its answer until the client has had its own: if the copy held the device's one slot
    // first, the client's exchange would wait for an answer that only comes after it (and time out).
    const res = await fetch(`${gw.url}/devices/shadowy/TEMPERATURE`, { headers: { "X-Gateway-Timeout": "20000" } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "21.5");
    const copy = await agent.nextRequest(20_000);
    assert.equal(copy.stanza.getChild("req", NS_HTTP)?.attrs.resource, "/TEMPERATURE");
    await agent.send(textReply(copy, "21.5"));
    await pollUntil("the comparison recorded", async () => (await comparisons(gw, "match")) === before + 1, { timeoutMs: 15_000 });
  });
});
