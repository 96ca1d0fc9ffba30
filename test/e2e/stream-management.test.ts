// XEP-0198 stream management on the XMPP server: an IQ delivered to a device session that then vanishes
// without acknowledging it is bounced by the server when the session's hibernation runs out (Prosody's
// mod_smacks: recipient-unavailable). The device may have acted on it, so the gateway answers 504
// GW_OUTCOME_UNKNOWN and keeps the Idempotency-Key: the retry, once the device is back, does not reach it.
// A JID without any session still bounces at once as service-unavailable: 503 GW_DEVICE_OFFLINE.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NS_HTTP } from "../../lib/xep0332/constants.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { connectVanishingDevice } from "../helpers/sm-device.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";
import { startPeer } from "../helpers/xmpp-peer.js";

async function codeOf(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

describe("XEP-0198: bounces of IQs a device session never acknowledged", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;

  before(async () => {
    stack = teardown.stopLater("stack", await startStack({ prosody: { streamManagement: { hibernationTimeS: 1 } } }));
    gw = teardown.stopLater("gateway", await startGateway(stack));
  });
  after(() => teardown.run());

  it("a JID without any session: 503 GW_DEVICE_OFFLINE at once, as without stream management", async () => {
    const res = await fetch(`${gw.url}/devices/sm-never/switch`, {
      method: "POST",
      body: "on",
      headers: { "idempotency-key": "sm-never-1" },
    });
    assert.equal(res.status, 503);
    assert.equal(await codeOf(res), "GW_DEVICE_OFFLINE");
  });

  it("delivered, unacknowledged, bounced at the end of hibernation: 504 GW_OUTCOME_UNKNOWN, and the key is kept", async () => {
    const device = await connectVanishingDevice(stack.prosody, "sm-dev1");
    teardown.stopLater("vanishing device", device);
    const headers = { "idempotency-key": "sm-1", "content-type": "text/plain" };
    const first = await fetch(`${gw.url}/devices/sm-dev1/switch`, { method: "POST", body: "on", headers });
    await device.vanished;
    assert.equal(first.status, 504);
    assert.equal(await codeOf(first), "GW_OUTCOME_UNKNOWN");

    // The device is back, on a fresh session; the retry gets the kept answer and never reaches it.
    const back = teardown.stopLater("device back", await startPeer(stack.prosody, "sm-dev1", { createAccount: false }));
    const retry = await fetch(`${gw.url}/devices/sm-dev1/switch`, {
      method: "POST",
      body: "on",
      headers: { ...headers, "x-gateway-timeout": "3000" },
    });
    assert.equal(retry.status, 504);
    assert.equal(await codeOf(retry), "GW_OUTCOME_UNKNOWN");
    assert.equal(back.received.filter((s) => s.name === "iq" && s.getChild("req", NS_HTTP)).length, 0, "the retry reached the device");
  });
});
