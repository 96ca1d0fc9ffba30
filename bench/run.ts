// `npm run bench`: parses the flags (common/args.ts), runs one mode, stops everything it started, prints the
// mode's table and writes its report as JSON to bench/results/. The modes, each in its own folder:
//   default   ratios/ (ratios/ratios.ts): four paths, the gateway against baselines taken in the same run
//   --soak    soak/ (soak/soak.ts): many requests held in flight at once against slow devices
//   --fleet   fleet/ (fleet/fleet.ts): many devices connected through one agent process
//   --capacity  capacity/ (capacity/capacity.ts): the per-request and per-item figures of docs/capacity.md
//   --failover  failover/ (failover/failover.ts): writes lost when a Sentinel primary fails, with and without WAIT
// common/ holds what several modes share: flags, /proc readings, statistics, the worker processes' plumbing.
import os from "node:os";
import { fileURLToPath } from "node:url";
import { Teardown } from "../test/helpers/stack.js";
import { parseArgs, USAGE, type BenchArgs } from "./common/args.js";
import { progress } from "./common/progress.js";
import { writeReport } from "./common/write-report.js";
import { runCapacity } from "./capacity/capacity.js";
import { formatCapacityTable } from "./capacity/report.js";
import { runFailover } from "./failover/failover.js";
import { formatFailoverTable } from "./failover/report.js";
import { runFleet } from "./fleet/fleet.js";
import { formatFleetTable } from "./fleet/report.js";
import { runRatios } from "./ratios/ratios.js";
import { formatTable, type BenchReport } from "./ratios/report.js";
import { medianTargets, type RepeatedReport } from "./ratios/repeat.js";
import { formatTargets } from "./common/targets.js";
import { runSoak } from "./soak/soak.js";
import { formatSoakTable } from "./soak/report.js";

const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url));

/** Set by the first stop signal: what fails after it is the interruption, not a finding. */
let interrupted = false;

/** What a run hands back: its report (the JSON), its table, and the name its file goes under. */
interface Outcome {
  kind: "bench" | "soak" | "fleet" | "capacity" | "failover";
  report: { startedAt: string };
  table: string;
}

async function runMode(args: BenchArgs, teardown: Teardown): Promise<Outcome> {
  if (args.mode === "soak") {
    const report = await runSoak(args, teardown);
    return { kind: "soak", report, table: formatSoakTable(report) };
  }
  if (args.mode === "fleet") {
    const report = await runFleet(args, teardown);
    return { kind: "fleet", report, table: formatFleetTable(report) };
  }
  if (args.mode === "failover") {
    const report = await runFailover(args.trials, args.durationS, teardown);
    return { kind: "failover", report, table: formatFailoverTable(report) };
  }
  if (args.mode === "capacity") {
    const report = await runCapacity(args, teardown);
    return { kind: "capacity", report, table: formatCapacityTable(report) };
  }
  if (args.paths.repeat === 1) {
    const report = await runRatios(args, teardown);
    return { kind: "bench", report, table: formatTable(report) };
  }
  const runs: BenchReport[] = [];
  for (let i = 1; i <= args.paths.repeat; i++) {
    progress(`run ${i} of ${args.paths.repeat}`);
    // Each run's processes are stopped before the next starts (and by the signal handler's teardown).
    const own = new Teardown({ timeoutMs: 10_000 });
    teardown.add(`run ${i}`, () => own.run());
    try {
      runs.push(await runRatios(args, own));
    } finally {
      await own.run();
    }
  }
  const report: RepeatedReport = { startedAt: runs[0]?.startedAt ?? new Date().toISOString(), runs, targets: medianTargets(runs) };
  const tables = runs.map((r, i) => `run ${i + 1} of ${runs.length}\n${formatTable(r)}`);
  const medians = [`the median of the ${runs.length} runs`, ...formatTargets(report.targets)].join("\n");
  return { kind: "bench", report, table: [...tables, medians].join("\n\n") };
}

async function main(): Promise<void> {
  let args: BenchArgs;
  try {
    const parsed = parseArgs(process.argv.slice(2));
    if (parsed === "help") {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    args = parsed;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }

  const teardown = new Teardown({ timeoutMs: 10_000 });
  // Ctrl-C or a kill: stop everything we started, then leave. A second signal leaves at once (the
  // harness and worker-process exit hooks still SIGKILL the children).
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      progress(`${signal}: stopping everything`);
      void teardown.run().finally(() => process.exit(128 + (os.constants.signals[signal] ?? 0)));
    });
  }

  let outcome: Outcome;
  try {
    outcome = await runMode(args, teardown);
  } finally {
    progress("stopping");
    await teardown.run();
  }
  const file = await writeReport(outcome.report, RESULTS_DIR, outcome.kind);
  if (args.json) process.stdout.write(`${JSON.stringify(outcome.report, null, 2)}\n`);
  else process.stdout.write(`\n${outcome.table}\nwritten to ${file}\n`);
}

main().catch((err: unknown) => {
  if (interrupted) return; // the signal handler reports and exits
  process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
