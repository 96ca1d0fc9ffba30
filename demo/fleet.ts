// The demo's fleet: simulated fire alarms caught in the middle of a migration, one or more at each stage
// of README's "Migrating a fleet". Every device keeps its own legacy HTTP server (what it served before it
// moved behind NAT); the stage says how the gateway reaches it and whether an agent runs next to it.
import { randomBytes } from "node:crypto";

export type Transport = "xmpp" | "http" | "shadow";

export interface DemoDevice {
  id: string;
  transport: Transport;
  /** The device agent runs next to it (step 2 of the migration): needed by xmpp and shadow, ready for a cut-over on http. */
  agent: boolean;
  /** With `fallback: "http"`: reached at its legacy server whenever its agent is offline. */
  fallback?: boolean;
  /**
   * Its address on the site network before it moved behind NAT, which legacy clients still use, with the
   * gateway as their forward proxy. Only a registry key: the gateway never connects to it, so the demo's
   * devices keep these while their servers listen on loopback.
   */
  legacyAddress: string;
  /** What its stage means, one line of the demo's fleet table. */
  note: string;
}

export const FLEET: readonly DemoDevice[] = [
  { id: "dev-17", transport: "xmpp", agent: true, legacyAddress: "10.0.0.17:8080", note: "migrated: answered by its agent over XMPP" },
  {
    id: "dev-18",
    transport: "xmpp",
    agent: true,
    fallback: true,
    legacyAddress: "10.0.0.18:8080",
    note: "migrated, its legacy server as a fallback while the agent is offline",
  },
  {
    id: "kitchen",
    transport: "shadow",
    agent: true,
    legacyAddress: "10.0.0.21:8080",
    note: "shadow: answered over HTTP; GET and HEAD also sent over XMPP and compared",
  },
  {
    id: "garage",
    transport: "http",
    agent: true,
    legacyAddress: "10.0.0.20:8080",
    note: "on HTTP, its agent installed: ready to cut over",
  },
  {
    id: "dev-19",
    transport: "http",
    agent: true,
    legacyAddress: "10.0.0.19:8080",
    note: "on HTTP, its agent installed: ready to cut over",
  },
  {
    id: "boiler",
    transport: "http",
    agent: false,
    legacyAddress: "10.0.0.22:8080",
    note: "on HTTP, no agent yet: the gateway proxies to its legacy server",
  },
];

/** The device whose live cut-over the demo walks through: on HTTP, with its agent already online. */
export const CUT_OVER = "garage";

/** The base URL of each device's own HTTP server (on loopback): its `httpTarget`, and what its agent calls. */
export type LegacyServers = ReadonlyMap<string, string>;

/** The registry entries (GATEWAY_DEVICES_FILE) for the fleet. */
export function registryEntries(fleet: readonly DemoDevice[], servers: LegacyServers): object[] {
  return fleet.map((d) => ({
    id: d.id,
    transport: d.transport,
    // Kept on migrated devices too: a rollback to "http" needs it, and so does the fallback.
    httpTarget: serverOf(servers, d.id),
    legacyAddress: d.legacyAddress,
    ...(d.fallback ? { fallback: "http" } : {}),
  }));
}

/** An XMPP account per device that has an agent (the agent's AGENT_FLEET_FILE); passwords are new on every run. */
export interface AgentIdentity {
  username: string;
  password: string;
  localUrl: string;
}

export function agentIdentities(fleet: readonly DemoDevice[], servers: LegacyServers): AgentIdentity[] {
  return fleet
    .filter((d) => d.agent)
    .map((d) => ({ username: d.id, password: randomBytes(12).toString("base64url"), localUrl: serverOf(servers, d.id) }));
}

function serverOf(servers: LegacyServers, id: string): string {
  const url = servers.get(id);
  if (url === undefined) throw new Error(`no legacy server for ${id}`);
  return url;
}
