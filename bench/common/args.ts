// Command-line flags of `npm run bench`.

/**
 * paths: the default four-path comparison; soak: many requests held at once; fleet: many devices in one agent;
 * capacity: the per-request and per-item figures of docs/capacity.md; failover: what a Sentinel failover loses.
 */
export type BenchMode = "paths" | "soak" | "fleet" | "capacity" | "failover";

export type SoakPhase = "xmpp" | "http";

/** The Redis the default run's gateway uses: one server, a Sentinel deployment, or a Cluster. */
export type RedisKind = "single" | "sentinel" | "cluster";
export const REDIS_KINDS: readonly RedisKind[] = ["single", "sentinel", "cluster"];

export interface PathsArgs {
  /** Simulated devices the load is spread over, round robin. */
  devices: number;
  redis: RedisKind;
  /** Whether each path is also measured unloaded: one client, one request at a time. */
  latency: boolean;
  /** Unloaded: requests first sent and not counted, then requests timed. */
  latencyWarmupRequests: number;
  latencyRequests: number;
  /** Runs of the whole comparison, one after the other; the targets are then read on their medians. */
  repeat: number;
}

export interface SoakArgs {
  /** Requests issued once each, all meant to be outstanding together. */
  requests: number;
  /** Devices the requests are spread over, round robin. */
  devices: number;
  /** How long each device holds a request before answering. */
  holdS: number;
  /** Requests are issued at an even pace over this long (a burst of 10,000 connects overflows listen backlogs). */
  rampS: number;
  phases: SoakPhase[];
}

export interface FleetArgs {
  devices: number;
}

export interface CapacityArgs {
  /** Requests per kind of request (each kind's Redis figures are its batch's deltas divided by this). */
  requests: number;
  /** Devices online at once (presence entries, memory per XMPP connection), on Prosody then on ejabberd. */
  devices: number;
  /** Requests held in flight at once at slow devices (Redis memory per exchange in flight). */
  held: number;
}

export interface BenchArgs {
  mode: BenchMode;
  /** --failover: trials per variant (alternating). */
  trials: number;
  durationS: number;
  warmupS: number;
  json: boolean;
  /**
   * Directory for CPU profiles: the gateway process (and, in fleet mode, the agent process) is profiled from
   * its start to its exit.
   */
  cpuProfDir: string | undefined;
  /**
   * NODE_OPTIONS for the gateway process (e.g. "--max-old-space-size=256"), to see how V8's heap sizing moves
   * its RSS (soak, fleet) or its CPU per request (the default run).
   */
  gatewayNodeOptions: string | undefined;
  /** Settings given to the gateway process besides the bench's own (--gateway-env), e.g. to compare one setting's two values. */
  gatewayEnv: Record<string, string>;
  paths: PathsArgs;
  soak: SoakArgs;
  fleet: FleetArgs;
  capacity: CapacityArgs;
}

export const USAGE = `usage: npm run bench -- [--duration S] [--quick] [--devices N] [--redis single|sentinel|cluster] [--no-latency]
                           [--gateway-node-options OPTS] [--json] [--cpu-prof DIR]
       npm run bench -- --soak [--requests N] [--devices N] [--hold S] [--ramp S] [--xmpp-only | --http-only]
                           [--gateway-node-options OPTS] [--json] [--cpu-prof DIR]
       npm run bench -- --fleet [--devices N] [--gateway-node-options OPTS] [--json] [--cpu-prof DIR]
       npm run bench -- --failover [--trials N] [--json]
       npm run bench -- --capacity [--requests N] [--devices N] [--held N] [--json]

default: four paths (raw IQ, gateway XMPP, bare http-proxy-3, gateway HTTP pass-through) under the same load,
         each path in slices of about 2 s alternating with its baseline's, then each unloaded (one client,
         one request at a time); the performance targets, met or missed
  --duration S     measured seconds per path (default 10), in slices of about 2 s, after a 2 s warm-up
  --quick          3 s per path after a 1 s warm-up, and 500 unloaded requests after 100, for smoke runs
  --devices N      simulated devices the load is spread over, round robin (default 10)
  --redis KIND     the gateway's Redis: single (default), sentinel (a primary, a replica, three Sentinels) or
                   cluster (three primaries, a replica each); Redis CPU is the sum over its processes
  --no-latency     skip the unloaded measurement (2,000 sequential requests per path after 200)
  --repeat N       the whole comparison N times, each with fresh processes; the targets on the N runs' medians
  --cpu-prof DIR   profile the gateway process from its start to its exit, (b) and (d) in one file in DIR
                   (open in Chrome DevTools); profiling slows the gateway: such a run's numbers are not comparable

--soak: requests held in flight all at once against slow devices, through the gateway's XMPP path, then
        through its HTTP pass-through; reports errors by status and code, the peak in flight, the gateway's RSS
  --requests N     requests per phase (default 10000)
  --devices N      simulated devices they are spread over (default 500)
  --hold S         seconds each device holds a request before it answers (default 20)
  --ramp S         seconds over which the requests are issued, at an even pace (default 5)
  --xmpp-only      skip the HTTP pass-through phase
  --http-only      skip the XMPP phase (the pass-through then starts on a fresh gateway, heap and all)
  --cpu-prof DIR   profile the gateway process over the whole run (written when it exits)

--fleet: devices connected through ONE device agent process (AGENT_FLEET_FILE); reports the time until the
         gateway tracks them all as online, the agent's RSS and CPU, the gateway's RSS, and one request to each
  --devices N      devices in the agent process (default 1000)
  --cpu-prof DIR   profile the gateway and the agent processes over the whole run (written when they exit)

--capacity: what docs/capacity.md multiplies out, against real Redis, Prosody and ejabberd: Redis commands,
            CPU and memory per kind of request; Redis memory per registry entry, online device, exchange in
            flight, idempotency record, asynchronous result, queued request; RSS per device connection and CPU
            per routed IQ of Prosody and ejabberd; what a presence re-announcement costs; with two
            gateways on ejabberd, what a reply forwarded to its exchange's owner costs Redis
  --requests N     requests per kind (default 5000)
  --devices N      devices online at once, on each XMPP server (default 1000)
  --held N         requests held in flight at once (default 2000, 20 per device)

--failover: Redis Sentinel (a primary, a replica, three Sentinels); writers add one key per write, the replication
            link breaks, the primary is SIGKILLed, the replica promoted: acknowledged writes lost, with and without
            WAIT 1 after each write, and what WAIT costs in rate and latency
  --trials N       trials per variant, alternating (default 3)
  --duration S     measured seconds of each keyed-request trial through the gateway (default 10)

Every mode but --failover and --capacity runs the gateway compiled (tsconfig.build.json), as it ships, in a
process of its own (--soak and --fleet the agent too); the gateway's RSS and CPU are its own
  --gateway-node-options OPTS   NODE_OPTIONS for the gateway process, e.g. "--max-old-space-size=256"
  --gateway-env NAME=VALUE      a setting of the gateway process (repeatable), e.g. GATEWAY_DEVICE_SLOT_REUSE_MS=0

  --json           print only the JSON result on stdout (progress still goes to stderr)`;

const DEFAULT_PATHS: PathsArgs = {
  devices: 10,
  redis: "single",
  latency: true,
  latencyWarmupRequests: 200,
  latencyRequests: 2000,
  repeat: 1,
};
const DEFAULT_SOAK: SoakArgs = { requests: 10_000, devices: 500, holdS: 20, rampS: 5, phases: ["xmpp", "http"] };
const DEFAULT_FLEET: FleetArgs = { devices: 1000 };
const DEFAULT_CAPACITY: CapacityArgs = { requests: 5000, devices: 1000, held: 2000 };

/** Flags that only make sense in one mode, to refuse a combination that would be silently ignored. */
const MODE_OF_FLAG: Record<string, BenchMode[]> = {
  "--duration": ["paths", "failover"],
  "--quick": ["paths"],
  "--requests": ["soak", "capacity"],
  "--held": ["capacity"],
  "--hold": ["soak"],
  "--ramp": ["soak"],
  "--xmpp-only": ["soak"],
  "--http-only": ["soak"],
  "--devices": ["paths", "soak", "fleet", "capacity"],
  "--redis": ["paths"],
  "--no-latency": ["paths"],
  "--repeat": ["paths"],
  "--cpu-prof": ["paths", "soak", "fleet"],
  "--gateway-node-options": ["paths", "soak", "fleet"],
  "--gateway-env": ["paths", "soak"],
  "--trials": ["failover"],
};

function numberFlag(name: string, value: string | undefined, min: number, max: number, integer: boolean): number {
  const n = Number(value);
  const ok = value !== undefined && value !== "" && Number.isFinite(n) && n >= min && n <= max && (!integer || Number.isInteger(n));
  if (!ok) throw new Error(`${name} wants ${integer ? "an integer" : "a number"} in [${min}, ${max}], got ${JSON.stringify(value)}`);
  return n;
}

export function parseArgs(argv: readonly string[]): BenchArgs | "help" {
  const args: BenchArgs = {
    mode: "paths",
    trials: 3,
    durationS: 10,
    warmupS: 2,
    json: false,
    cpuProfDir: undefined,
    gatewayNodeOptions: undefined,
    gatewayEnv: {},
    paths: { ...DEFAULT_PATHS },
    soak: { ...DEFAULT_SOAK, phases: [...DEFAULT_SOAK.phases] },
    fleet: { ...DEFAULT_FLEET },
    capacity: { ...DEFAULT_CAPACITY },
  };
  const seen: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const name = arg.includes("=") ? arg.slice(0, arg.indexOf("=")) : arg;
    const value = (): string | undefined => (arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i]);
    seen.push(name);
    if (arg === "--help" || arg === "-h") return "help";
    else if (arg === "--json") args.json = true;
    else if (arg === "--soak" || arg === "--fleet" || arg === "--capacity" || arg === "--failover") {
      if (args.mode !== "paths") throw new Error("--soak, --fleet, --capacity and --failover are separate runs: give one of them");
      args.mode = arg === "--soak" ? "soak" : arg === "--fleet" ? "fleet" : arg === "--capacity" ? "capacity" : "failover";
    } else if (name === "--trials") args.trials = numberFlag("--trials", value(), 1, 100, true);
    else if (arg === "--quick") {
      args.durationS = 3;
      args.warmupS = 1;
      args.paths.latencyWarmupRequests = 100;
      args.paths.latencyRequests = 500;
    } else if (arg === "--no-latency") args.paths.latency = false;
    else if (name === "--repeat") args.paths.repeat = numberFlag("--repeat", value(), 1, 20, true);
    else if (name === "--redis") {
      const kind = value();
      if (!REDIS_KINDS.includes(kind as RedisKind))
        throw new Error(`--redis wants one of ${REDIS_KINDS.join(", ")}, got ${JSON.stringify(kind)}`);
      args.paths.redis = kind as RedisKind;
    } else if (name === "--duration") args.durationS = numberFlag("--duration", value(), Number.MIN_VALUE, 3600, false);
    else if (name === "--cpu-prof") {
      const dir = value();
      if (!dir) throw new Error("--cpu-prof wants a directory");
      args.cpuProfDir = dir;
    } else if (name === "--gateway-node-options") {
      const opts = value();
      if (!opts) throw new Error("--gateway-node-options wants node options, e.g. --gateway-node-options=--max-old-space-size=256");
      args.gatewayNodeOptions = opts;
    } else if (name === "--gateway-env") {
      // Not `name`: the flag's own `=` is taken already when written as --gateway-env=NAME=VALUE.
      const setting = arg.startsWith("--gateway-env=") ? arg.slice("--gateway-env=".length) : argv[++i];
      const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(setting ?? "");
      if (!m) throw new Error(`--gateway-env wants NAME=VALUE, got ${JSON.stringify(setting)}`);
      args.gatewayEnv[m[1] as string] = m[2] as string;
    } else if (name === "--requests") {
      const n = numberFlag("--requests", value(), 1, 100_000, true);
      args.soak.requests = n;
      args.capacity.requests = n;
    } else if (name === "--held") args.capacity.held = numberFlag("--held", value(), 20, 10_000, true);
    else if (name === "--hold") args.soak.holdS = numberFlag("--hold", value(), 0, 600, false);
    else if (name === "--ramp") args.soak.rampS = numberFlag("--ramp", value(), 0, 600, false);
    else if (arg === "--xmpp-only" || arg === "--http-only") {
      if (args.soak.phases.length === 1) throw new Error("--xmpp-only and --http-only leave nothing to run together");
      args.soak.phases = [arg === "--xmpp-only" ? "xmpp" : "http"];
    } else if (name === "--devices") {
      const n = numberFlag("--devices", value(), 1, 100_000, true);
      args.paths.devices = n;
      args.soak.devices = n;
      args.fleet.devices = n;
      args.capacity.devices = n;
    } else throw new Error(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  for (const flag of seen) {
    const modes = MODE_OF_FLAG[flag];
    if (modes && !modes.includes(args.mode)) {
      throw new Error(`${flag} applies to ${modes.map((m) => (m === "paths" ? "the default run" : `--${m}`)).join(" and ")} only`);
    }
  }
  return args;
}
