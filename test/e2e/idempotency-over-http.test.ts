// Idempotency-Key over the HTTP pass-through, against a real gateway, Redis, Prosody and legacy HTTP
// servers: a keyed unsafe request runs at most once per key whichever path it takes. An XMPP device with
// `fallback: "http"` that is offline is reached over HTTP with its key held, and the HTTP answer is kept:
// a retry, over HTTP again or once the device is back on XMPP, gets that answer replayed. Devices on
// `transport: "http"` keep the same contract.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { NS_HTTP } from "../../lib/xep0332/constants.js";
import { startDeviceServer, type DeviceServer } from "../helpers/http-device.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";
import { startPeer } from "../helpers/xmpp-peer.js";

/** A legacy device that counts what it is asked to do and says which run this was. */
function countingDevice(replyBytes = 0) {
  const seen: string[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req
      .setEncoding("utf8")
      .on("data", (d: string) => (body += d))
      .on("end", () => {
        seen.push(`${req.method ?? ""} ${req.url ?? ""} ${body}`);
        const text = replyBytes > 0 ? "x".repeat(replyBytes) : `done ${seen.length}: ${body}`;
        res.writeHead(201, "Switched", { "content-type": "text/plain", "x-run": String(seen.length) }).end(text);
      });
  };
  return { seen, handler };
}

async function codeOf(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

describe("Idempotency-Key over the HTTP pass-through", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;

  async function device(replyBytes = 0): Promise<{ seen: string[]; server: DeviceServer }> {
    const d = countingDevice(replyBytes);
    const server = teardown.stopLater("legacy device", await startDeviceServer(d.handler));
    return { seen: d.seen, server };
  }

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater("gateway", await startGateway(stack, { GATEWAY_MAX_REPLY_BYTES: "4096" }));
  });
  after(() => teardown.run());

  it("fallback: an offline XMPP device reached over HTTP keeps its key; retries get the HTTP answer, over HTTP or once the device is back on XMPP", async () => {
    const legacy = await device();
    await gw.gateway.registry.put({ id: "fb-1", transport: "xmpp", httpTarget: legacy.server.url, fallback: "http" });
    const send = () =>
      fetch(`${gw.url}/devices/fb-1/bulb`, {
        method: "POST",
        body: "on",
        headers: { "idempotency-key": "fb-key-1", "content-type": "text/plain" },
      });

    const first = await send();
    assert.equal(first.status, 201);
    assert.equal(await first.text(), "done 1: on");
    assert.deepEqual(legacy.seen, ["POST /bulb on"]);

    const again = await send();
    assert.equal(again.status, 201, "the kept answer, replayed");
    assert.equal(again.statusText, "Switched");
    assert.equal(again.headers.get("x-run"), "1");
    assert.equal(await again.text(), "done 1: on");
    assert.equal(legacy.seen.length, 1, "the retry reached the device over HTTP again");

    // The device is back on XMPP: the retry is still answered from the key, and reaches it by neither path.
    const peer = teardown.stopLater("fb-1 on XMPP", await startPeer(stack.prosody, "fb-1"));
    const back = await fetch(`${gw.url}/devices/fb-1/bulb`, {
      method: "POST",
      body: "on",
      headers: { "idempotency-key": "fb-key-1", "x-gateway-timeout": "3000" },
    });
    assert.equal(back.status, 201);
    assert.equal(await back.text(), "done 1: on");
    assert.equal(
      peer.received.filter((s) => s.name === "iq" && s.getChild("req", NS_HTTP)).length,
      0,
      "the retry reached the device over XMPP",
    );
    assert.equal(legacy.seen.length, 1);
  });

  it("transport http: a keyed unsafe request runs once; retries replay status, reason, headers and body; another request with the key is 422", async () => {
    const legacy = await device();
    await gw.gateway.registry.put({ id: "ht-1", transport: "http", httpTarget: legacy.server.url });
    const send = (body: string) =>
      fetch(`${gw.url}/devices/ht-1/valve?open=1`, { method: "PUT", body, headers: { "idempotency-key": "ht-key-1" } });

    const first = await send("50%");
    assert.equal(first.status, 201);
    assert.equal(await first.text(), "done 1: 50%");
    const again = await send("50%");
    assert.equal(again.status, 201);
    assert.equal(again.statusText, "Switched");
    assert.equal(again.headers.get("x-run"), "1");
    assert.equal(await again.text(), "done 1: 50%");
    assert.deepEqual(legacy.seen, ["PUT /valve?open=1 50%"]);

    const other = await send("90%");
    assert.equal(other.status, 422);
    assert.equal(await codeOf(other), "GW_IDEMPOTENCY_MISMATCH");
    assert.equal(legacy.seen.length, 1);

    // Without a key, or with a safe method, nothing changes: every request reaches the device.
    await (await fetch(`${gw.url}/devices/ht-1/valve`, { method: "PUT", body: "10%" })).text();
    await (await fetch(`${gw.url}/devices/ht-1/valve`, { headers: { "idempotency-key": "ht-key-1" } })).text();
    assert.equal(legacy.seen.length, 3);
  });

  it("an answer over GATEWAY_MAX_REPLY_BYTES reaches the client whole, and its retries get 504 GW_OUTCOME_UNKNOWN, never a second run", async () => {
    const legacy = await device(10_000);
    await gw.gateway.registry.put({ id: "ht-big", transport: "http", httpTarget: legacy.server.url });
    const send = () => fetch(`${gw.url}/devices/ht-big/dump`, { method: "POST", body: "go", headers: { "idempotency-key": "big-1" } });
    const first = await send();
    assert.equal(first.status, 201);
    assert.equal((await first.text()).length, 10_000);
    const again = await send();
    assert.equal(again.status, 504);
    assert.equal(await codeOf(again), "GW_OUTCOME_UNKNOWN");
    assert.equal(legacy.seen.length, 1);
  });
});
