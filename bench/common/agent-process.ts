// The device agent as it ships (adapters/device-agent/main.ts), one process serving many device identities
// from an AGENT_FLEET_FILE: what the soak and fleet runs connect their devices with. Its own process, so its
// RSS and CPU are its own; started like the server processes of the local stack (killed at exit if the
// bench dies before its teardown).
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { spawnChild, type ChildHandle } from "../../local-stack/process.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { profileArgs } from "./compiled.js";

export interface FleetIdentity {
  username: string;
  password: string;
  localUrl: string;
}

export interface AgentProcessOptions {
  /** c2s service and virtual host of the XMPP server. */
  service: string;
  domain: string;
  /** The gateway's component domain: the agents serve its requests only, and announce themselves to it. */
  gatewayJid: string;
  identities: FleetIdentity[];
  /** AGENT_LOCAL_TIMEOUT_MS: must outlast a slow device's hold, or the agent answers 504 for it. */
  localTimeoutMs: number;
  /** AGENT_PRESENCE_INTERVAL_S, when not the agent's default (e.g. short, to measure what presence costs). */
  presenceIntervalS?: number;
  /** Profile the process (--cpu-prof) into this directory, written when it exits. */
  cpuProfDir?: string;
  /** Node's arguments that start the agent (bench/common/compiled.ts); default: its sources through tsx. */
  nodeArgs?: readonly string[];
}

export interface AgentProcess {
  readonly pid: number;
  /** What the process printed last (warnings, a fatal error). */
  output(): string;
  hasExited(): boolean;
  stop(): Promise<void>;
}

const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url));

export async function startAgentProcess(opts: AgentProcessOptions): Promise<AgentProcess> {
  const dir = await makeTempDir("bench-agent-");
  let child: ChildHandle;
  try {
    const fleetFile = path.join(dir, "fleet.json");
    await writeFile(fleetFile, JSON.stringify(opts.identities));
    child = await spawnChild(
      process.execPath,
      [...profileArgs(opts.cpuProfDir), ...(opts.nodeArgs ?? ["--import", "tsx", "adapters/device-agent/main.ts"])],
      {
        name: "device-agent",
        cwd: PROJECT_ROOT,
        env: {
          AGENT_SERVICE: opts.service,
          AGENT_DOMAIN: opts.domain,
          AGENT_GATEWAY_JID: opts.gatewayJid,
          AGENT_FLEET_FILE: fleetFile,
          AGENT_LOCAL_TIMEOUT_MS: String(opts.localTimeoutMs),
          // PLAIN on loopback: SCRAM-SHA-1, the server's first offer, costs a PBKDF2 per login on both sides.
          AGENT_SASL_MECHANISM: "PLAIN",
          LOG_LEVEL: "warn",
          ...(opts.presenceIntervalS !== undefined ? { AGENT_PRESENCE_INTERVAL_S: String(opts.presenceIntervalS) } : {}),
        },
      },
    );
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
  return {
    pid: child.pid,
    output: () => child.output(),
    hasExited: () => child.hasExited(),
    async stop() {
      try {
        // SIGTERM: every agent logs out, then the process exits (and writes its profile); 15 s for 1,000.
        await child.stop("SIGTERM", 15_000);
      } finally {
        await removeDir(dir);
      }
    },
  };
}
