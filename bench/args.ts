// Command-line flags of `npm run bench`.

export interface BenchArgs {
  durationS: number;
  warmupS: number;
  json: boolean;
  /** Directory for CPU profiles of the in-process gateway over the measured windows of (b) and (d). */
  cpuProfDir: string | undefined;
}

export const USAGE = `usage: npm run bench -- [--duration S] [--quick] [--json] [--cpu-prof DIR]
  --duration S     measured seconds per path (default 10), after a 2 s warm-up
  --quick          3 s per path after a 1 s warm-up, for smoke runs
  --json           print only the JSON result on stdout (progress still goes to stderr)
  --cpu-prof DIR   write a V8 CPU profile of the gateway over the measured window of (b) and of (d) to DIR
                   (open in Chrome DevTools); profiling slows the gateway: such a run's numbers are not comparable`;

export function parseArgs(argv: readonly string[]): BenchArgs | "help" {
  const args: BenchArgs = { durationS: 10, warmupS: 2, json: false, cpuProfDir: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--help" || arg === "-h") return "help";
    else if (arg === "--json") args.json = true;
    else if (arg === "--quick") {
      args.durationS = 3;
      args.warmupS = 1;
    } else if (arg === "--duration" || arg?.startsWith("--duration=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i];
      const n = Number(value);
      if (!value || !Number.isFinite(n) || n <= 0 || n > 3600) throw new Error(`--duration wants seconds in (0, 3600], got ${JSON.stringify(value)}`);
      args.durationS = n;
    } else if (arg === "--cpu-prof" || arg?.startsWith("--cpu-prof=")) {
      const value = arg.includes("=") ? arg.slice(arg.indexOf("=") + 1) : argv[++i];
      if (!value) throw new Error("--cpu-prof wants a directory");
      args.cpuProfDir = value;
    } else throw new Error(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  return args;
}
