// The result of `npm run bench -- --capacity`: the JSON file's shape and the printed tables. Every figure
// docs/capacity.md uses is one row of the first table, named by its key.
import type { CpuSeconds } from "../common/cpu.js";

/** One kind of request: what Redis did for it, per request, from INFO commandstats deltas. */
export interface KindResult {
  key: string;
  label: string;
  requests: number;
  /** Answers by status (or failure). */
  outcomes: Record<string, number>;
  /**
   * Commands Redis executed per request, by name (lower case, as Redis names them), from INFO commandstats:
   * the gateway's own commands and, again, the commands its scripts run inside Redis.
   */
  commandsPerRequest: Record<string, number>;
  totalCommandsPerRequest: number;
  /** From MONITOR over a sample batch: the commands the gateway sent (round trips, pipelined or not). */
  clientCommandsPerRequest: Record<string, number>;
  /** From MONITOR: the commands its scripts ran inside Redis. */
  scriptCommandsPerRequest: Record<string, number>;
  roundTripsPerRequest: number;
  /** Requests of the MONITOR sample batch. */
  monitorSample: number;
  /** commandstats usec per request; counts a script's inner commands twice (in it and in EVALSHA). */
  redisExecUsPerRequest: number;
  /** Microseconds redis-server was on a CPU (its threads' schedstat), per request: execution plus I/O. */
  redisCpuUsPerRequest: number | null;
  /** INFO memory used_memory after the batch (and its background work) minus before, per request. */
  retainedBytesPerRequest: number;
  elapsedMs: number;
}

/** Redis memory per item of one kind, with one sample key's MEMORY USAGE beside the used_memory delta. */
export interface MemoryItem {
  key: string;
  label: string;
  items: number;
  usedMemoryDeltaBytes: number;
  bytesPerItem: number;
  /** Sample keys and their MEMORY USAGE (SAMPLES 0), bytes. */
  samples: Array<{ key: string; bytes: number; note?: string }>;
}

/** An XMPP server's memory per client connection, and its CPU per routed IQ. */
export interface ServerFigures {
  server: "prosody" | "ejabberd";
  connections: number;
  connectMs: number | null;
  rssBeforeMiB: number;
  rssAfterMiB: number;
  kibPerConnection: number;
  /** Raw XEP-0332 IQ round trips (bench/ratios/raw-iq.ts): rate and CPU ms per round trip, per process. */
  iq: { rate: number; errors: number; cpuMsPerRequest: CpuSeconds };
  /** The server's and Redis's CPU per presence re-announcement, with gateways connected (ejabberd only). */
  presence: { presences: number; serverCpuUsPerPresence: number | null; redisCpuUsPerPresence: number | null } | null;
}

/**
 * Two gateways on one ejabberd component domain: ejabberd hands each reply to either at random, and the one
 * that does not own the exchange forwards it through Redis. The difference between the two-gateway and the
 * one-gateway batch, divided by the share of replies forwarded, is what one forwarded reply costs in Redis.
 */
export interface ForwardingCost {
  /** Replies forwarded (gateway_replies_forwarded_total on the second gateway) per request sent. */
  forwardedShare: number;
  roundTripsPerForward: number | null;
  executedPerForward: number | null;
  redisCpuUsPerForward: number | null;
}

/** What a device's presence re-announcement costs (AGENT_PRESENCE_INTERVAL_S), gateway on Prosody. */
export interface PresenceCost {
  devices: number;
  intervalS: number;
  windowS: number;
  /** devices × window / interval: the agent sends each device's presence on a timer of its own. */
  presences: number;
  commandsPerPresence: Record<string, number>;
  totalCommandsPerPresence: number;
  clientCommandsPerPresence: Record<string, number>;
  scriptCommandsPerPresence: Record<string, number>;
  roundTripsPerPresence: number;
  redisCpuUsPerPresence: number | null;
  /** CPU µs per presence of the gateway (the bench process, idle otherwise) and of Prosody. */
  gatewayCpuUsPerPresence: number | null;
  prosodyCpuUsPerPresence: number | null;
}

export interface CapacityReport {
  startedAt: string;
  machine: { cpus: number; node: string; redis: string; loadavg: number[] };
  settings: { requests: number; devices: number; registryEntries: number; heldRequests: number; concurrency: number };
  arrangement: Record<string, string>;
  /** Redis commands per second with the gateway up and idle (10 devices online): background, not per request. */
  idleCommandsPerS: number;
  kinds: KindResult[];
  memory: MemoryItem[];
  servers: ServerFigures[];
  presence: PresenceCost | null;
  forwarding: ForwardingCost;
  /** Every figure in one list: [key, value, unit, what]; the printed table. */
  figures: Array<[string, number | null, string, string]>;
  notes: string[];
}

const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

const fmt = (n: number | null | undefined, digits: number): string =>
  n === null || n === undefined || Number.isNaN(n) ? "-" : n.toFixed(digits);

/** The figures list, in table order, from the parts of the report. */
export function figuresOf(r: Omit<CapacityReport, "figures">): CapacityReport["figures"] {
  const out: CapacityReport["figures"] = [];
  for (const k of r.kinds) {
    out.push([
      `redis.round_trips.${k.key}`,
      k.roundTripsPerRequest,
      "commands/request",
      `commands the gateway sends (MONITOR): ${k.label}`,
    ]);
    out.push([
      `redis.executed.${k.key}`,
      k.totalCommandsPerRequest,
      "commands/request",
      `commands Redis executes, scripts' inner ones too: ${k.label}`,
    ]);
    out.push([`redis.cpu_us.${k.key}`, k.redisCpuUsPerRequest, "µs/request", `redis-server CPU (schedstat): ${k.label}`]);
    out.push([`redis.retained_bytes.${k.key}`, k.retainedBytesPerRequest, "bytes/request", `used_memory left after it: ${k.label}`]);
  }
  for (const m of r.memory)
    out.push([`redis.memory.${m.key}`, m.bytesPerItem, "bytes/item", `Redis used_memory per ${m.label} (${m.items} items)`]);
  for (const s of r.servers) {
    out.push([
      `${s.server}.kib_per_connection`,
      s.kibPerConnection,
      "KiB/connection",
      `${s.server} RSS per device connection (${s.connections}, online)`,
    ]);
    out.push([
      `${s.server}.cpu_us_per_iq`,
      (s.iq.cpuMsPerRequest[s.server] ?? Number.NaN) * 1000,
      "µs/IQ",
      `${s.server} CPU per raw IQ round trip`,
    ]);
    if (s.presence) {
      const p = s.presence;
      out.push([`${s.server}.cpu_us_per_presence`, p.serverCpuUsPerPresence, "µs/presence", `${s.server} CPU per presence (two gateways)`]);
      out.push([
        `${s.server}.redis_cpu_us_per_presence`,
        p.redisCpuUsPerPresence,
        "µs/presence",
        `redis-server CPU per presence via ${s.server}`,
      ]);
    }
  }
  if (r.presence) {
    const p = r.presence;
    out.push([
      "presence.round_trips",
      p.roundTripsPerPresence,
      "commands/presence",
      "commands the gateway sends per presence re-announcement",
    ]);
    out.push([
      "presence.executed",
      p.totalCommandsPerPresence,
      "commands/presence",
      "commands Redis executes per presence, scripts' inner ones too",
    ]);
    out.push(["presence.redis_cpu_us", p.redisCpuUsPerPresence, "µs/presence", "redis-server CPU per presence"]);
    out.push(["presence.gateway_cpu_us", p.gatewayCpuUsPerPresence, "µs/presence", "gateway CPU per presence"]);
    out.push(["presence.prosody_cpu_us", p.prosodyCpuUsPerPresence, "µs/presence", "Prosody CPU per presence"]);
  }
  const f = r.forwarding;
  out.push(["forward.share", f.forwardedShare, "forwards/request", "replies forwarded to the owner, two gateways on ejabberd"]);
  out.push(["forward.round_trips", f.roundTripsPerForward, "commands/forward", "commands the gateways send per forwarded reply"]);
  out.push(["forward.executed", f.executedPerForward, "commands/forward", "commands Redis executes per forwarded reply"]);
  out.push(["forward.redis_cpu_us", f.redisCpuUsPerForward, "µs/forward", "redis-server CPU per forwarded reply"]);
  out.push(["redis.idle_commands_per_s", r.idleCommandsPerS, "commands/s", "Redis commands with the gateway idle"]);
  return out;
}

export function formatCapacityTable(r: CapacityReport): string {
  const lines: string[] = [
    `capacity inputs: ${r.machine.cpus} cores, node ${r.machine.node}, redis ${r.machine.redis}, load average at start ${r.machine.loadavg.map((l) => l.toFixed(2)).join(" ")}`,
    "",
    `${"figure".padEnd(40)}${"value".padStart(12)}  ${"unit".padEnd(18)}what`,
  ];
  for (const [key, value, unit, what] of r.figures) {
    const digits = value !== null && Math.abs(value) < 10 ? 2 : value !== null && Math.abs(value) < 1000 ? 1 : 0;
    lines.push(`${key.padEnd(40)}${fmt(value, digits).padStart(12)}  ${unit.padEnd(18)}${what}`);
  }
  const perCommand = (title: string, pick: (k: KindResult) => Record<string, number>): void => {
    const names = [...new Set(r.kinds.flatMap((k) => Object.keys(pick(k))))].sort();
    lines.push("", title);
    lines.push(`${"kind".padEnd(22)}${names.map((n) => n.slice(0, 8).padStart(9)).join("")}${"total".padStart(9)}`);
    for (const k of r.kinds) {
      const row = pick(k);
      lines.push(`${k.key.padEnd(22)}${names.map((n) => fmt(row[n] ?? 0, 2).padStart(9)).join("")}${fmt(sum(row), 2).padStart(9)}`);
    }
  };
  perCommand("Redis commands the gateway sends per request (MONITOR over a sample batch of each kind)", (k) => k.clientCommandsPerRequest);
  perCommand("Redis commands its scripts run inside Redis per request (MONITOR)", (k) => k.scriptCommandsPerRequest);
  lines.push(
    "",
    "answers: " +
      r.kinds
        .map(
          (k) =>
            `${k.key} ${Object.entries(k.outcomes)
              .map(([o, c]) => `${o}: ${c}`)
              .join(", ")}`,
        )
        .join("; "),
  );
  if (r.presence) {
    const p = r.presence;
    const cmds = Object.entries(p.clientCommandsPerPresence)
      .map(([n, v]) => `${n} ${v.toFixed(2)}`)
      .join(", ");
    lines.push(
      "",
      `presence: ${p.devices} devices every ${p.intervalS} s over ${p.windowS} s ≈ ${p.presences} presences; sent per presence: ${cmds}; run by scripts: ${Object.entries(
        p.scriptCommandsPerPresence,
      )
        .map(([n, v]) => `${n} ${v.toFixed(2)}`)
        .join(", ")}`,
    );
  }
  lines.push("", "Redis memory samples (MEMORY USAGE, bytes)");
  for (const m of r.memory)
    for (const s of m.samples) lines.push(`  ${m.key.padEnd(20)} ${String(s.bytes).padStart(9)}  ${s.key}${s.note ? ` (${s.note})` : ""}`);
  for (const s of r.servers) {
    lines.push(
      `${s.server}: ${s.connections} connections, RSS ${fmt(s.rssBeforeMiB, 1)} → ${fmt(s.rssAfterMiB, 1)} MiB, all online in ${fmt((s.connectMs ?? Number.NaN) / 1000, 2)} s; raw IQ ${fmt(s.iq.rate, 0)}/s, ${s.iq.errors} errors`,
    );
  }
  for (const note of r.notes) lines.push(`note: ${note}`);
  return `${lines.join("\n")}\n`;
}
