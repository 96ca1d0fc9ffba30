// The simulated devices of the default run: their HTTP servers (bench/ratios/devices-worker.ts, one process)
// and ONE device agent process for all of them (AGENT_FLEET_FILE, bench/common/agent-process.ts), the shipped
// agent under tsx. One process each however many devices there are: 5,000 agents as 5,000 processes, or
// 5,000 servers each with its own objects, would not fit a 2-core machine next to the rest.
//
// The agents are stopped and started again around the gateway's start: a device announces itself (directed
// presence to the gateway's component domain) when it comes online, and what it announced while the bare
// component of (a) held that domain never reached the gateway. Started again after the gateway, every agent
// is heard, as after a gateway restart.
import { performance } from "node:perf_hooks";
import { pollUntil } from "../../local-stack/ports.js";
import type { XmppServer } from "../../local-stack/xmpp-server.js";
import type { Teardown } from "../../test/helpers/stack.js";
import { startAgentProcess, type AgentProcess } from "../common/agent-process.js";
import { scrapeMetrics } from "../common/scrape.js";
import { WorkerProcess } from "../common/worker-process.js";
import type { DevicesConfig, DevicesCount, DevicesReady } from "./devices-worker.js";

export interface BenchFleet {
  ids: readonly string[];
  /** Each device's own HTTP server, by id (http://127.0.0.1:PORT). */
  servers: Readonly<Record<string, string>>;
  /** The devices worker: the HTTP servers. */
  devicesPid: number;
  /** Connections the devices' servers accepted so far, all together (asked of the devices worker). */
  connectionsAccepted(): Promise<number>;
  /** The agent process, while it runs. */
  agentPid(): number | undefined;
  /** Starts the agent process (logging every device in); resolves once it is spawned, not once they are online. */
  startAgents(): Promise<void>;
  stopAgents(): Promise<void>;
  /**
   * Until the gateway at `gatewayUrl` counts every device online (gateway_devices_online, from their
   * presence); resolves with the milliseconds since the agent process was spawned.
   */
  waitOnlineAt(gatewayUrl: string, timeoutMs: number): Promise<number>;
}

/** What the fleet needs of the XMPP server. */
export type FleetServer = Pick<XmppServer, "service" | "vhost" | "components" | "createUsers">;

/** Creates the accounts (one batch) and starts the devices' HTTP servers; the agents start with startAgents(). */
export async function startBenchFleet(server: FleetServer, ids: readonly string[], teardown: Teardown): Promise<BenchFleet> {
  const component = server.components[0];
  if (!component) throw new Error("the XMPP server has no component");
  const identities = ids.map((id) => ({ username: id, password: `pw-${id}` }));
  await server.createUsers(identities);

  const config: DevicesConfig = { ids: [...ids] };
  const devices = WorkerProcess.start("devices", new URL("./devices-worker.ts", import.meta.url), config);
  teardown.add("devices", () => devices.stop());
  // One listen per device, one after the other: seconds for thousands.
  const { servers } = (await devices.next("ready", 30_000 + ids.length * 20)) as unknown as DevicesReady;
  const missing = ids.filter((id) => typeof servers?.[id] !== "string");
  if (missing.length > 0) throw new Error(`the devices worker reported no HTTP server for ${missing.slice(0, 5).join(", ")}…`);

  let agent: AgentProcess | undefined;
  let spawnedAt = 0;
  const stopAgents = async (): Promise<void> => {
    const running = agent;
    agent = undefined;
    await running?.stop();
  };
  teardown.add("agent", stopAgents);
  return {
    ids,
    servers,
    devicesPid: devices.pid,
    async connectionsAccepted() {
      devices.send("count");
      return ((await devices.next("count", 10_000)) as unknown as DevicesCount).accepted;
    },
    agentPid: () => agent?.pid,
    async startAgents() {
      if (agent) throw new Error("the agent process runs already");
      spawnedAt = performance.now();
      agent = await startAgentProcess({
        service: server.service,
        domain: server.vhost,
        gatewayJid: component.domain,
        identities: identities.map((i) => ({ ...i, localUrl: servers[i.username] ?? "" })),
        localTimeoutMs: 10_000,
      });
    },
    stopAgents,
    async waitOnlineAt(gatewayUrl, timeoutMs) {
      await pollUntil(
        `${ids.length} devices online at the gateway`,
        async () => {
          if (agent?.hasExited()) throw new Error(`the agent process exited:\n${agent.output().slice(-2000)}`);
          const online = (await scrapeMetrics(gatewayUrl, ["gateway_devices_online"])).gateway_devices_online ?? 0;
          return online >= ids.length;
        },
        { timeoutMs, intervalMs: 100 },
      );
      return performance.now() - spawnedAt;
    },
  };
}
