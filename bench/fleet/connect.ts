// Many devices connected through ONE device agent process (AGENT_FLEET_FILE), on whichever XMPP server is
// given (Prosody or ejabberd: local-stack/xmpp-server.ts): the accounts are created in one batch, the agent
// is spawned, and the caller's count of online devices is polled until it reaches them all. Shared by
// `--fleet` (the count is the gateway's gateway_devices_online) and `--capacity` (the gateway's count on
// Prosody; ejabberd's own count of sessions when no gateway is connected to it).
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import type { XmppServer } from "../../local-stack/xmpp-server.js";
import type { Teardown } from "../../test/helpers/stack.js";
import { startAgentProcess, type AgentProcess } from "../common/agent-process.js";
import { listenOverflows } from "../common/proc.js";

/** What the fleet needs of the XMPP server. */
export type FleetServer = Pick<XmppServer, "service" | "vhost" | "components" | "createUsers">;

export interface FleetPlan {
  server: FleetServer;
  ids: readonly string[];
  /** Each device's local HTTP server, by id (bench/common/slow-devices-worker.ts). */
  servers: Record<string, string>;
  /** Devices online now, as the caller counts them; undefined when the count could not be read this time. */
  countOnline(): Promise<number | undefined>;
  /** Every device must be counted within this long after the agent's spawn, or `allOnlineMs` is null. */
  boundMs: number;
  /** Node's arguments that start the agent (bench/common/compiled.ts); default: its sources through tsx. */
  agentArgs?: readonly string[];
  /** AGENT_PRESENCE_INTERVAL_S, when not the agent's default. */
  presenceIntervalS?: number;
  cpuProfDir?: string;
  /** Called just before the agent's spawn, after the accounts exist (e.g. to sample CPU from there). */
  beforeSpawn?(): void;
}

export interface Connected {
  /** From the agent process's spawn until every device was counted online (null: never). */
  allOnlineMs: number | null;
  /** The count at the end of the wait. */
  online: number;
  /** [ms since the spawn, devices counted online], at each change seen (polled every 100 ms). */
  timeline: Array<[number, number]>;
  /** Connections the kernel dropped meanwhile because a listener's accept queue was full, machine-wide. */
  listenOverflows: number | null;
}

export interface FleetConnection {
  agent: AgentProcess;
  connect: Connected;
  /** The accounts' creation, one batch (prosodyctl shell, or one ejabberd PIEFXIS import). */
  usersCreatedMs: number;
}

/** Creates the accounts, spawns ONE agent process for them all, waits until `countOnline` reaches them all. */
export async function connectFleet(plan: FleetPlan, teardown: Teardown): Promise<FleetConnection> {
  let t = performance.now();
  await plan.server.createUsers(plan.ids.map((id) => ({ username: id, password: `pw-${id}` })));
  const usersCreatedMs = performance.now() - t;
  const component = plan.server.components[0];
  if (!component) throw new Error("the XMPP server has no component");
  plan.beforeSpawn?.();
  const overflowsBefore = listenOverflows();
  t = performance.now();
  const agent = await startAgentProcess({
    service: plan.server.service,
    domain: plan.server.vhost,
    gatewayJid: component.domain,
    identities: plan.ids.map((id) => ({ username: id, password: `pw-${id}`, localUrl: plan.servers[id] ?? "" })),
    localTimeoutMs: 10_000,
    ...(plan.agentArgs ? { nodeArgs: plan.agentArgs } : {}),
    ...(plan.presenceIntervalS !== undefined ? { presenceIntervalS: plan.presenceIntervalS } : {}),
    ...(plan.cpuProfDir ? { cpuProfDir: plan.cpuProfDir } : {}),
  });
  teardown.add("agent", () => agent.stop());
  const watched = await watchConnect(plan, agent, t);
  const overflowsAfter = listenOverflows();
  return {
    agent,
    usersCreatedMs,
    connect: {
      ...watched,
      listenOverflows: overflowsBefore === undefined || overflowsAfter === undefined ? null : overflowsAfter - overflowsBefore,
    },
  };
}

/** Polls the count of online devices until it reaches them all, recording each change. */
async function watchConnect(plan: FleetPlan, agent: AgentProcess, spawnedAt: number): Promise<Omit<Connected, "listenOverflows">> {
  const n = plan.ids.length;
  const timeline: Array<[number, number]> = [];
  let online = 0;
  while (performance.now() - spawnedAt < plan.boundMs) {
    if (agent.hasExited()) throw new Error(`the agent process exited:\n${agent.output().slice(-2000)}`);
    const now = await plan.countOnline().catch(() => undefined);
    const ms = performance.now() - spawnedAt;
    if (now !== undefined && !Number.isNaN(now) && now !== online) {
      online = now;
      timeline.push([Math.round(ms), now]);
    }
    if (online >= n) return { allOnlineMs: ms, online, timeline };
    await delay(100);
  }
  return { allOnlineMs: null, online, timeline };
}
