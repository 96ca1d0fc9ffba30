// The result of `npm run bench -- --fleet`: the printed table and the JSON file's shape.
import type { CpuSeconds } from "../common/cpu.js";
import type { LatencySummary } from "../common/stats.js";

/** Processes whose CPU is measured per stage, in table order. */
export const FLEET_PROCESSES = ["agent", "gateway", "prosody", "redis"] as const;

export interface FleetReport {
  startedAt: string;
  machine: { cpus: number; node: string; clockTicksPerSecond: number };
  settings: { devices: number };
  arrangement: Record<string, string>;
  /** prosodyctl shell, one batch for every account (local-stack/prosody.ts createUsers). */
  usersCreatedMs: number;
  connect: {
    /** From the agent process's spawn until the gateway counted every device online (null: never). */
    allOnlineMs: number | null;
    /** The gateway's gateway_devices_online at the end of the wait. */
    online: number;
    /** [ms since the spawn, devices online at the gateway], at each change seen (polled every 100 ms). */
    timeline: Array<[number, number]>;
    /**
     * Connections the kernel dropped meanwhile because a listener's accept queue was full (Prosody's c2s
     * listener queues 128), machine-wide; each costs its agent a SYN retransmission, a second or more.
     */
    listenOverflows: number | null;
  };
  /** One request to every device through the gateway's XMPP path, after they were all online. */
  reach: { requested: number; answered: number; outcomes: Record<string, number>; elapsedMs: number; latencyMs: LatencySummary };
  /** MiB: RSS after the connect, and the peak over the whole run (VmHWM). */
  memoryMiB: Record<"agent" | "gateway" | "prosody", { afterConnect: number; afterReach: number; peak: number }>;
  /** CPU seconds per stage: connect (agent spawn to all online; the agent's includes node's start-up), reach, idle. */
  cpuS: { connect: CpuSeconds; reach: CpuSeconds; idle: CpuSeconds };
  idleS: number;
  targets: { devicesOnline: number; answered: number };
  meetsTargets: boolean;
  notes: string[];
}

const fixed = (n: number | null | undefined, digits: number): string =>
  n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits);

/** When the gateway had counted this fraction of the fleet online, in seconds since the agent's spawn. */
function reached(r: FleetReport, fraction: number): string {
  const want = Math.ceil(r.settings.devices * fraction);
  const hit = r.connect.timeline.find(([, n]) => n >= want);
  return hit ? `${fixed(hit[0] / 1000, 2)} s` : "never";
}

export function formatFleetTable(r: FleetReport): string {
  const m = r.memoryMiB;
  const cpuRow = (stage: keyof FleetReport["cpuS"], label: string): string =>
    `${label.padEnd(34)}${FLEET_PROCESSES.map((p) => fixed(r.cpuS[stage][p], 2).padStart(9)).join("")}`;
  const outcomes = Object.entries(r.reach.outcomes)
    .sort(([, a], [, b]) => b - a)
    .map(([o, n]) => `${o}: ${n}`)
    .join(", ");
  const lines = [
    `${r.settings.devices} devices in ONE agent process, ${r.machine.cpus} cores, node ${r.machine.node}`,
    "",
    `accounts created (one prosodyctl batch)   ${fixed(r.usersCreatedMs / 1000, 2)} s`,
    `all online at the gateway                 ${r.connect.allOnlineMs === null ? `never (${r.connect.online} of ${r.settings.devices})` : `${fixed(r.connect.allOnlineMs / 1000, 2)} s after the agent's spawn`}` +
      `   (10%: ${reached(r, 0.1)}, 50%: ${reached(r, 0.5)}, 90%: ${reached(r, 0.9)}; listen queue overflows, machine-wide: ${r.connect.listenOverflows ?? "-"})`,
    `one request to each through the gateway   ${r.reach.answered}/${r.reach.requested} answered in ${fixed(r.reach.elapsedMs / 1000, 2)} s` +
      ` (p50 ${fixed(r.reach.latencyMs.p50, 1)} ms, p99 ${fixed(r.reach.latencyMs.p99, 1)} ms)${outcomes && r.reach.answered !== r.reach.requested ? `; ${outcomes}` : ""}`,
    "",
    `${"RSS MiB".padEnd(34)}${"after connect".padStart(14)}${"after reach".padStart(12)}${"peak".padStart(8)}`,
    ...(["agent", "gateway", "prosody"] as const).map(
      (p) =>
        `${p.padEnd(34)}${fixed(m[p].afterConnect, 1).padStart(14)}${fixed(m[p].afterReach, 1).padStart(12)}${fixed(m[p].peak, 1).padStart(8)}`,
    ),
    "",
    `${"cpu-s".padEnd(34)}${FLEET_PROCESSES.map((p) => p.padStart(9)).join("")}`,
    cpuRow("connect", "connect (spawn to all online)"),
    cpuRow("reach", `reach (${r.reach.requested} requests)`),
    cpuRow("idle", `idle (${r.idleS} s, all connected)`),
    "",
    `target: ${r.targets.devicesOnline} devices online and tracked, each answering: ${r.meetsTargets ? "met" : "missed"}`,
  ];
  for (const note of r.notes) lines.push(`note: ${note}`);
  return `${lines.join("\n")}\n`;
}
