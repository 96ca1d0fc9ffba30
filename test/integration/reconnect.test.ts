// The connection supervisor keeps retrying even when an attempt hangs after the TCP connect: a server that
// accepts and never speaks XMPP (as a server still starting up can) must not leave the agent stuck.
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { after, it } from "node:test";
import { DeviceAgent } from "../../adapters/device-agent/agent.js";
import { pollUntil } from "../../local-stack/ports.js";

const sockets = new Set<Socket>();
let connections = 0;
const silent = createServer((socket) => {
  connections++;
  sockets.add(socket);
  socket.on("close", () => sockets.delete(socket));
  socket.resume(); // read the stream header, never answer it
});

after(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => silent.close(resolve));
});

it("abandons an attempt that never comes online and tries again", async () => {
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const port = (silent.address() as AddressInfo).port;
  const quiet = { info: () => undefined, warn: () => undefined };
  const agent = new DeviceAgent(
    {
      service: `xmpp://127.0.0.1:${port}`,
      domain: "localhost",
      username: "stuck",
      password: "pw",
      resource: "agent",
      localUrl: "http://127.0.0.1:1",
      gatewayJid: "gateway.localhost",
      localTimeoutMs: 1000,
      presenceIntervalMs: 60_000,
      maxBodyBytes: 1024,
      chunkThresholdBytes: 65536,
      chunkSizeBytes: 32768,
      backoff: { initialMs: 20, maxMs: 50 },
      attemptTimeoutMs: 300,
    },
    { log: quiet },
  );
  try {
    await agent.start();
    await pollUntil("a second and third attempt", () => connections >= 3, { timeoutMs: 10_000 });
    assert.equal(agent.online, false);
  } finally {
    await agent.stop();
  }
});
