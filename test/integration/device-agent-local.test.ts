// The device agent's call to the legacy device's own HTTP server over a kept-alive connection that the device
// closes just as the agent reuses it: a race every keep-alive client meets (RFC 9112 §9.3.1, §9.6), here made
// certain by a device that resets the connection when a second request arrives on it.
import assert from "node:assert/strict";
import { Agent } from "node:http";
import { after, describe, it } from "node:test";
import { callLocal } from "../../adapters/device-agent/local-http.js";
import type { HttpRequestMessage } from "../../lib/xep0332/message.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startStaleClosingDevice, type StaleClosingDevice } from "../helpers/stale-device.js";

function message(method: HttpRequestMessage["method"], resource: string, body = ""): HttpRequestMessage {
  return { method, resource, headers: [], body: Buffer.from(body) };
}

describe("device agent: a kept-alive connection the device closed as it was reused", () => {
  const stops: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of stops) await stop();
  });

  /** A device and an agent of their own, with one request answered and its connection idle in the pool. */
  async function afterOneCall(): Promise<{ device: StaleClosingDevice; agent: Agent }> {
    const device = await startStaleClosingDevice();
    const agent = new Agent({ keepAlive: true });
    stops.push(
      () => device.stop(),
      () => {
        agent.destroy();
        return Promise.resolve();
      },
    );
    const first = await callLocal(new URL(device.url), message("GET", "/one"), { timeoutMs: 30_000, maxBodyBytes: 1024, agent });
    assert.equal(first.statusCode, 200);
    assert.equal(first.body.toString(), "ok GET");
    await pollUntil("the connection back in the agent's pool", () => Object.values(agent.freeSockets).flat().length === 1);
    return { device, agent };
  }

  it("sends an idempotent request again on a new connection, and the device answers it", async () => {
    const { device, agent } = await afterOneCall();
    const second = await callLocal(new URL(device.url), message("GET", "/two"), { timeoutMs: 30_000, maxBodyBytes: 1024, agent });
    assert.equal(second.statusCode, 200, second.body.toString());
    assert.equal(second.body.toString(), "ok GET");
    assert.deepEqual(device.connections, [["GET /one HTTP/1.1", "GET /two HTTP/1.1"], ["GET /two HTTP/1.1"]]);
  });

  it("does not send a POST again (it may have acted): 502 local-unreachable", async () => {
    const { device, agent } = await afterOneCall();
    const second = await callLocal(new URL(device.url), message("POST", "/bulb", "on"), { timeoutMs: 30_000, maxBodyBytes: 1024, agent });
    assert.equal(second.statusCode, 502);
    assert.equal(new Map(second.headers).get("X-Device-Agent-Error"), "local-unreachable");
    assert.deepEqual(device.connections, [["GET /one HTTP/1.1", "POST /bulb HTTP/1.1"]]);
  });
});
