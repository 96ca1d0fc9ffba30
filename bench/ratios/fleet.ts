// The simulated devices of the default run: their HTTP servers (bench/ratios/devices-worker.ts, one process)
// and device agents for them (AGENT_FLEET_FILE, bench/common/agent-process.ts), the shipped agent under tsx:
// ONE agent process serving the gateway's component (the XMPP server's first), and ONE more serving the
// bare component of (a) (its second), each device logged in once per process, under an account of each
// process's own, both answering from the device's one HTTP server. An agent serves requests from one
// component domain only, so (a) and (b) need an agent each to run side by side, in alternating slices. One
// process per role however many devices there are: 5,000 agents as 5,000 processes, or 5,000 servers each
// with its own objects, would not fit a 2-core machine next to the rest.
//
// The agents start once the gateway is up: a device announces itself (directed presence to the gateway's
// component domain) when it comes online, and the gateway counts it online from that.
import { performance } from "node:perf_hooks";
import { pollUntil } from "../../local-stack/ports.js";
import type { XmppServer } from "../../local-stack/xmpp-server.js";
import type { Teardown } from "../../test/helpers/stack.js";
import { startAgentProcess, type AgentProcess } from "../common/agent-process.js";
import { scrapeMetrics } from "../common/scrape.js";
import { WorkerProcess } from "../common/worker-process.js";
import type { DevicesConfig, DevicesCount, DevicesReady } from "./devices-worker.js";

export interface BenchFleet {
  /** The devices as the gateway's component reaches them (accounts `{id}`). */
  ids: readonly string[];
  /** The same devices as the baseline component reaches them, in the same order. */
  baselineIds: readonly string[];
  /** Each device's own HTTP server, by id (http://127.0.0.1:PORT). */
  servers: Readonly<Record<string, string>>;
  /** The devices worker: the HTTP servers. */
  devicesPid: number;
  /** Connections the devices' servers accepted so far, all together (asked of the devices worker). */
  connectionsAccepted(): Promise<number>;
  /** The agent process serving the gateway's component, while it runs. */
  agentPid(): number | undefined;
  /** The agent process serving the baseline component, while it runs. */
  baselineAgentPid(): number | undefined;
  /** Starts both agent processes (logging every device in); resolves once they are spawned, not once the devices are online. */
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

/**
 * Creates the accounts (one batch) and starts the devices' HTTP servers; the agents start with startAgents().
 * The server's first component is the gateway's, its second the baseline's.
 */
export async function startBenchFleet(
  server: FleetServer,
  accounts: { ids: readonly string[]; baselineIds: readonly string[] },
  teardown: Teardown,
): Promise<BenchFleet> {
  const { ids, baselineIds } = accounts;
  const [component, baseline] = server.components;
  if (!component || !baseline) throw new Error("the XMPP server needs two components: the gateway's and the baseline's");
  if (baselineIds.length !== ids.length) throw new Error("one baseline account per device");
  const account = (username: string): { username: string; password: string } => ({ username, password: `pw-${username}` });
  await server.createUsers([...ids, ...baselineIds].map(account));

  const config: DevicesConfig = { ids: [...ids] };
  const devices = WorkerProcess.start("devices", new URL("./devices-worker.ts", import.meta.url), config);
  teardown.add("devices", () => devices.stop());
  // One listen per device, one after the other: seconds for thousands.
  const { servers } = (await devices.next("ready", 30_000 + ids.length * 20)) as unknown as DevicesReady;
  const missing = ids.filter((id) => typeof servers?.[id] !== "string");
  if (missing.length > 0) throw new Error(`the devices worker reported no HTTP server for ${missing.slice(0, 5).join(", ")}…`);

  let agents: { gateway: AgentProcess; baseline: AgentProcess } | undefined;
  let spawnedAt = 0;
  const stopAgents = async (): Promise<void> => {
    const running = agents;
    agents = undefined;
    await Promise.all([running?.gateway.stop(), running?.baseline.stop()]);
  };
  /** An agent process for `usernames` (`ids[i]`'s device behind `usernames[i]`) serving `domain`'s requests. */
  const agentFor = (domain: string, usernames: readonly string[]): Promise<AgentProcess> =>
    startAgentProcess({
      service: server.service,
      domain: server.vhost,
      gatewayJid: domain,
      identities: usernames.map((username, i) => ({ ...account(username), localUrl: servers[ids[i] as string] ?? "" })),
      localTimeoutMs: 10_000,
    });
  teardown.add("agent", stopAgents);
  return {
    ids,
    baselineIds,
    servers,
    devicesPid: devices.pid,
    async connectionsAccepted() {
      devices.send("count");
      return ((await devices.next("count", 10_000)) as unknown as DevicesCount).accepted;
    },
    agentPid: () => agents?.gateway.pid,
    baselineAgentPid: () => agents?.baseline.pid,
    async startAgents() {
      if (agents) throw new Error("the agent processes run already");
      spawnedAt = performance.now();
      // One after the other: each resolves once spawned, and a failed second leaves only the first to stop.
      const gateway = await agentFor(component.domain, ids);
      try {
        agents = { gateway, baseline: await agentFor(baseline.domain, baselineIds) };
      } catch (err) {
        await gateway.stop();
        throw err;
      }
    },
    stopAgents,
    async waitOnlineAt(gatewayUrl, timeoutMs) {
      await pollUntil(
        `${ids.length} devices online at the gateway`,
        async () => {
          for (const agent of agents ? [agents.gateway, agents.baseline] : [])
            if (agent.hasExited()) throw new Error(`an agent process exited:\n${agent.output().slice(-2000)}`);
          const online = (await scrapeMetrics(gatewayUrl, ["gateway_devices_online"])).gateway_devices_online ?? 0;
          return online >= ids.length;
        },
        { timeoutMs, intervalMs: 100 },
      );
      return performance.now() - spawnedAt;
    },
  };
}
