// The device agent's call to the legacy device's own HTTP server over a kept-alive connection that the device
// closes just as the agent reuses it: a race every keep-alive client meets (RFC 9112 §9.3.1, §9.6), here made
// certain by a device that resets the connection when a second request arrives on it.
import assert from "node:assert/strict";
import { Agent } from "node:http";
import net from "node:net";
import { after, describe, it } from "node:test";
import { callLocal } from "../../adapters/device-agent/local-http.js";
import type { HttpRequestMessage } from "../../adapters/xep0332/message.js";
import { pollUntil } from "../../deploy/local/ports.js";

interface ResettingDevice {
  url: URL;
  /** One entry per connection: the request lines it received. */
  connections: string[][];
  stop(): Promise<void>;
}

/**
 * Answers the first request of each connection (keeping the connection open) and resets the connection when
 * another request arrives on it, as a device does whose idle timeout fired while that request was on its way.
 */
async function resettingDevice(): Promise<ResettingDevice> {
  const connections: string[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    const seen: string[] = [];
    connections.push(seen);
    let buffered = "";
    socket.setEncoding("latin1").on("data", (text: string) => {
      buffered += text;
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      seen.push(buffered.slice(0, buffered.indexOf("\r\n")));
      buffered = "";
      if (seen.length === 1) socket.write("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nfirst one");
      else socket.resetAndDestroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}`),
    connections,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function message(method: HttpRequestMessage["method"], resource: string, body = ""): HttpRequestMessage {
  return { method, resource, headers: [], body: Buffer.from(body) };
}

describe("device agent: a kept-alive connection the device closed as it was reused", () => {
  const stops: Array<() => Promise<void>> = [];
  after(async () => {
    for (const stop of stops) await stop();
  });

  /** A device and an agent of their own, with one request answered and its connection idle in the pool. */
  async function afterOneCall(): Promise<{ device: ResettingDevice; agent: Agent }> {
    const device = await resettingDevice();
    const agent = new Agent({ keepAlive: true });
    stops.push(device.stop, async () => agent.destroy());
    const first = await callLocal(device.url, message("GET", "/one"), { timeoutMs: 30_000, maxBodyBytes: 1024, agent });
    assert.equal(first.statusCode, 200);
    assert.equal(first.body.toString(), "first one");
    await pollUntil("the connection back in the agent's pool", () => Object.values(agent.freeSockets).flat().length === 1);
    return { device, agent };
  }

  it("sends an idempotent request again on a new connection, and the device answers it", async () => {
    const { device, agent } = await afterOneCall();
    const second = await callLocal(device.url, message("GET", "/two"), { timeoutMs: 30_000, maxBodyBytes: 1024, agent });
    assert.equal(second.statusCode, 200, second.body.toString());
    assert.equal(second.body.toString(), "first one");
    assert.deepEqual(device.connections, [["GET /one HTTP/1.1", "GET /two HTTP/1.1"], ["GET /two HTTP/1.1"]]);
  });

  it("does not send a POST again (it may have acted): 502 local-unreachable", async () => {
    const { device, agent } = await afterOneCall();
    const second = await callLocal(device.url, message("POST", "/bulb", "on"), { timeoutMs: 30_000, maxBodyBytes: 1024, agent });
    assert.equal(second.statusCode, 502);
    assert.equal(new Map(second.headers).get("X-Device-Agent-Error"), "local-unreachable");
    assert.deepEqual(device.connections, [["GET /one HTTP/1.1", "POST /bulb HTTP/1.1"]]);
  });
});
