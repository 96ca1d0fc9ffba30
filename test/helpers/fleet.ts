// Simulated devices: a real HTTP server per device and a device agent for it, all in this process.
import { Agent } from "node:http";
import { DeviceAgent, type AgentOptions } from "../../adapters/device-agent/agent.js";
import { startDeviceServer, type DeviceHandler, type DeviceServer } from "./http-device.js";
import type { XmppServer as LocalXmppServer } from "../../local-stack/xmpp-server.js";

/** What a fleet needs of an XMPP server: Prosody and ejabberd both offer it. */
export type XmppServer = Pick<LocalXmppServer, "service" | "vhost" | "components" | "createUsers">;

export interface SimulatedDevice {
  id: string;
  server: DeviceServer;
  agent: DeviceAgent;
}

export interface Fleet {
  devices: SimulatedDevice[];
  byId(id: string): SimulatedDevice;
  stop(): Promise<void>;
}

const quiet = { info: () => undefined, warn: () => undefined };

export function agentOptions(prosody: XmppServer, id: string, localUrl: string, overrides: Partial<AgentOptions> = {}): AgentOptions {
  return {
    service: prosody.service,
    domain: prosody.vhost,
    username: id,
    password: `pw-${id}`,
    resource: "agent",
    localUrl,
    gatewayJid: prosody.components[0]?.domain ?? "gateway.localhost",
    localTimeoutMs: 10_000,
    presenceIntervalMs: 60_000,
    maxBodyBytes: 10 * 1024 * 1024,
    chunkThresholdBytes: 65536,
    chunkSizeBytes: 32768,
    saslMechanism: "PLAIN", // PLAIN on loopback: SCRAM's PBKDF2 costs ~0.6 s per login
    backoff: { initialMs: 50, maxMs: 1000 },
    ...overrides,
  };
}

/** Creates the accounts, starts one device server and one agent per id, and waits until all are online. */
export async function startFleet(
  prosody: XmppServer,
  ids: string[],
  handlerFor: (id: string) => DeviceHandler,
  overrides: Partial<AgentOptions> = {},
): Promise<Fleet> {
  await prosody.createUsers(ids.map((id) => ({ username: id, password: `pw-${id}` })));
  const httpAgent = new Agent({ keepAlive: true });
  const devices: SimulatedDevice[] = [];
  const stop = async () => {
    await Promise.allSettled(devices.map((d) => d.agent.stop()));
    await Promise.allSettled(devices.map((d) => d.server.stop()));
    httpAgent.destroy();
  };
  try {
    for (const id of ids) {
      const server = await startDeviceServer(handlerFor(id));
      // No idle timeout: a device that closes a kept-alive connection as the agent reuses it fails a POST with
      // 502 local-unreachable (the agent may not send it again), a race no test here is about.
      server.server.keepAliveTimeout = 0;
      const agent = new DeviceAgent(agentOptions(prosody, id, server.url, overrides), { log: quiet, httpAgent });
      devices.push({ id, server, agent });
    }
    await Promise.all(devices.map((d) => d.agent.start()));
    await Promise.all(devices.map((d) => d.agent.waitOnline(30_000)));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    devices,
    byId: (id) => {
      const d = devices.find((x) => x.id === id);
      if (!d) throw new Error(`no simulated device ${id}`);
      return d;
    },
    stop,
  };
}
