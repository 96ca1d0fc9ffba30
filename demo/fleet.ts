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
  /** What its stage means, one line for the demo's fleet table. */
  note: string;
}

export const FLEET: readonly DemoDevice[] = [
  { id: "dev-17", transport: "xmpp", agent: true, note: "migrated: answered by its agent over XMPP" },
  {
    id: "dev-18",
    transport: "xmpp",
    agent: true,
    fallback: true,
    note: "migrated, its legacy server as a fallback while the agent is offline",
  },
  { id: "kitchen", transport: "shadow", agent: true, note: "shadow: answered over HTTP; GET and HEAD also sent over XMPP and compared" },
  { id: "garage", transport: "http", agent: true, note: "on HTTP, its agent installed: ready to cut over" },
  { id: "dev-19", transport: "http", agent: true, note: "on HTTP, its agent installed: ready to cut over" },
  { id: "boiler", transport: "http", agent: false, note: "on HTTP, no agent yet: the gateway proxies to its legacy server" },
];

/** The device whose live cut-over the demo walks through: on HTTP, with its agent already online. */
export const CUT_OVER = "garage";

/** Where a device's own HTTP server listens: its `httpTarget`, and the legacy address clients knew it by. */
export interface LegacyServer {
  url: string;
  /** `host:port`, the registry's `legacyAddress`. */
  address: string;
}

/** The registry entries (GATEWAY_DEVICES_FILE) for the fleet, every one with its legacy server. */
export function registryEntries(fleet: readonly DemoDevice[], servers: ReadonlyMap<string, LegacyServer>): object[] {
  return fleet.map((d) => {
    const server = serverOf(servers, d.id);
    return {
      id: d.id,
      transport: d.transport,
      // Kept on migrated devices too: a rollback to "http" needs it, and so does the fallback.
      httpTarget: server.url,
      legacyAddress: server.address,
      ...(d.fallback ? { fallback: "http" } : {}),
    };
  });
}

/** An XMPP account per device that has an agent; the password is new on every run. */
export interface AgentIdentity {
  username: string;
  password: string;
  localUrl: string;
}

export function agentIdentities(fleet: readonly DemoDevice[], servers: ReadonlyMap<string, LegacyServer>): AgentIdentity[] {
  return fleet
    .filter((d) => d.agent)
    .map((d) => ({ username: d.id, password: randomBytes(12).toString("base64url"), localUrl: serverOf(servers, d.id).url }));
}

function serverOf(servers: ReadonlyMap<string, LegacyServer>, id: string): LegacyServer {
  const server = servers.get(id);
  if (!server) throw new Error(`no legacy server for ${id}`);
  return server;
}
