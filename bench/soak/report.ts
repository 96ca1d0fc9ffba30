// The result of `npm run bench -- --soak`: the printed table and the JSON file's shape.
import type { SoakPhase } from "../common/args.js";
import type { BurstResult } from "./burst-worker.js";
import type { CpuSeconds } from "../common/cpu.js";
import { formatTargets, type Target } from "../common/targets.js";

/**
 * The soak's targets: every request answered by its device, and a gateway that stays small doing it, with
 * this many requests held and Node's default heap (no --max-old-space-size), by path.
 */
export const SOAK_TARGETS = { requests: 10_000, errors: 0, gatewayPeakRssBelowMiB: { xmpp: 300, http: 400 } } as const;

/** Processes whose CPU is measured over each phase, in table order. */
export const SOAK_PROCESSES = ["gateway", "prosody", "redis", "agent", "devices", "load"] as const;

export interface SoakPhaseResult {
  label: string;
  transport: SoakPhase;
  burst: BurstResult;
  /** Requests that did not end in a 200 with their device's reading. */
  errors: number;
  /** The most requests in flight at once, three ways. */
  inFlight: {
    /** The gateway's gauge gateway_xmpp_iq_inflight, sampled; null on the HTTP path, which has no such gauge. */
    gatewayGauge: number | null;
    /** Held by the device servers at once (exact: counted where they are held). */
    heldAtDevices: number;
    /** Sent and not yet answered, as the clients saw it (exact). */
    clientOutstanding: number;
  };
  /** The gateway process's RSS: before the phase, its peak during it (VmHWM), and after. */
  gatewayRssMiB: { before: number; peak: number; after: number };
  /** The agent process's peak RSS during the phase (VmHWM); null when it does not serve the phase. */
  agentPeakRssMiB: number | null;
  /** Peaks of the gateway's V8 heap (used, reserved) and external memory (buffers), sampled from its /metrics. */
  gatewayMemoryMiB: { heapUsed: number; heapTotal: number; external: number };
  /** Scrapes of /metrics during the phase, and how many failed (a saturated gateway answers late). */
  scrapes: { samples: number; failed: number };
  /**
   * Connections the kernel dropped during the phase because a listener's accept queue was full (the whole
   * machine's count: another process's listener may add to it); null when unreadable.
   */
  listenOverflows: number | null;
  cpuS: CpuSeconds;
  /** Gateway counters that grew during the phase (timeouts, drops, pass-through errors): its own account. */
  gatewayCounters: Record<string, number>;
  meetsTargets: boolean;
}

export interface SoakReport {
  startedAt: string;
  machine: { cpus: number; node: string; clockTicksPerSecond: number; openFilesLimit: number | null };
  settings: {
    requests: number;
    devices: number;
    holdS: number;
    rampS: number;
    /** GATEWAY_DEVICE_MAX_IN_FLIGHT: each device's share of the requests. */
    maxInFlightPerDevice: number;
    /** GATEWAY_MAX_IN_FLIGHT: the instance's ceiling, set to the requests of a phase. */
    maxInFlight: number;
    /** GATEWAY_REQUEST_TIMEOUT_MS and AGENT_LOCAL_TIMEOUT_MS. */
    deadlineMs: number;
  };
  arrangement: Record<string, string>;
  /** devicesOnlineMs: from the agent's spawn until the gateway counted every device online; null without agents. */
  setup: { usersCreatedMs: number; devicesOnlineMs: number | null };
  phases: SoakPhaseResult[];
  /** Per phase: its errors and the gateway's peak RSS against SOAK_TARGETS (bench/soak/targets.ts). */
  targets: Target[];
  notes: string[];
}

const fixed = (n: number | null | undefined, digits: number): string =>
  n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits);
const LABEL = 28;

function row(p: SoakPhaseResult): string {
  const f = p.inFlight;
  return [
    p.label.padEnd(LABEL),
    String(p.burst.requests).padStart(8),
    String(p.burst.succeeded).padStart(7),
    String(p.errors).padStart(7),
    `${f.gatewayGauge ?? "-"}/${f.heldAtDevices}/${f.clientOutstanding}`.padStart(23),
    `${fixed(p.gatewayRssMiB.before, 0)}/${fixed(p.gatewayRssMiB.peak, 0)}`.padStart(16),
    fixed(p.agentPeakRssMiB, 0).padStart(10),
    fixed(p.burst.elapsedMs / 1000, 1).padStart(8),
    fixed(p.burst.latencyMs.p50 / 1000, 2).padStart(7),
    fixed(p.burst.latencyMs.max / 1000, 2).padStart(7),
  ].join("");
}

export function formatSoakTable(r: SoakReport): string {
  const s = r.settings;
  const lines = [
    `${s.requests} requests per phase over ${s.devices} devices (${s.maxInFlightPerDevice} each), held ${s.holdS} s by the device, ` +
      `issued over ${s.rampS} s; deadline ${s.deadlineMs / 1000} s; ${r.machine.cpus} cores, node ${r.machine.node}, open files ${r.machine.openFilesLimit ?? "?"}`,
    `setup: ${s.devices} accounts created in ${fixed(r.setup.usersCreatedMs / 1000, 2)} s` +
      (r.setup.devicesOnlineMs === null
        ? ""
        : `, all devices online at the gateway ${fixed(r.setup.devicesOnlineMs / 1000, 2)} s after the agent started`),
    "",
    `${"phase".padEnd(LABEL)}${"requests".padStart(8)}${"ok".padStart(7)}${"errors".padStart(7)}` +
      `${"in flight gw/dev/cli".padStart(23)}${"gw RSS MiB".padStart(16)}${"agent MiB".padStart(10)}${"elapsed".padStart(8)}${"p50 s".padStart(7)}${"max s".padStart(7)}`,
    `${" ".repeat(LABEL + 22)}${"(peak)".padStart(23)}${"(before/peak)".padStart(16)}${"(peak)".padStart(10)}${"s".padStart(8)}`,
    ...r.phases.map(row),
  ];
  for (const p of r.phases) {
    const outcomes = Object.entries(p.burst.outcomes)
      .sort(([, a], [, b]) => b - a)
      .map(([o, n]) => `${o}: ${n}`)
      .join(", ");
    lines.push(`${p.label}: outcomes ${outcomes || "none"}; issued in ${fixed(p.burst.issueMs / 1000, 1)} s`);
    const pad = " ".repeat(p.label.length);
    const spans = Object.entries(p.burst.failuresIssuedMs).map(
      ([o, [a, b]]) => `${o} issued at ${fixed(a / 1000, 1)}-${fixed(b / 1000, 1)} s`,
    );
    if (spans.length > 0) lines.push(`${pad}  failures: ${spans.join(", ")}`);
    const counters = Object.entries(p.gatewayCounters)
      .map(([name, n]) => `${name} +${n}`)
      .join(", ");
    if (counters) lines.push(`${pad}  gateway counters: ${counters}`);
    const m = p.gatewayMemoryMiB;
    lines.push(
      `${pad}  gateway peaks: heap used ${fixed(m.heapUsed, 0)} MiB, heap total ${fixed(m.heapTotal, 0)} MiB, external ${fixed(m.external, 0)} MiB ` +
        `(${p.scrapes.samples} scrapes, ${p.scrapes.failed} failed); listen queue overflows (machine-wide): ${p.listenOverflows ?? "-"}`,
    );
    lines.push(`${pad}  cpu-s ${SOAK_PROCESSES.join("/")}: ${SOAK_PROCESSES.map((n) => fixed(p.cpuS[n], 2)).join("/")}`);
  }
  lines.push("", ...formatTargets(r.targets));
  for (const note of r.notes) lines.push(`note: ${note}`);
  return `${lines.join("\n")}\n`;
}
