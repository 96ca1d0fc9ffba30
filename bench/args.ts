// Command-line flags of `npm run bench`.

export interface BenchArgs {
  durationS: number;
  warmupS: number;
  json: boolean;
}

export const USAGE = `usage: npm run bench -- [--duration S] [--quick] [--json]
  --duration S   measured seconds per path (default 10), after a 2 s warm-up
  --quick        3 s per path after a 1 s warm-up, for smoke runs
  --json         print only the JSON result on stdout (progress still goes to stderr)`;

export function parseArgs(argv: readonly string[]): BenchArgs | "help" {
  const args: BenchArgs = { durationS: 10, warmupS: 2, json: false };
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
    } else throw new Error(`unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
  }
  return args;
}
