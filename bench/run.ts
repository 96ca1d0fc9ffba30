// `npm run bench`: the raw IQ round trip (a) and the gateway's XMPP path (b), one after the other, on the
// same Prosody, Redis and simulated devices.
//
// How the processes are arranged, so that the gateway is measured alone:
//   this process   the gateway (startGateway, in-process) and the orchestration, which only waits and
//                  reads /proc while the load runs
//   prosody        its own process (test harness), shared by both paths
//   redis-server   its own process (test harness), used by the gateway only
//   devices        child `node --import tsx bench/devices-worker.ts`: 10 device HTTP servers + 10 agents
//   load           child `node --import tsx bench/load-worker.ts`, one per path: for (a) a bare
//                  @xmpp/component that is its own load generator, for (b) 64 keep-alive node:http clients
// (a) runs first, while no gateway is up: the bare component must hold the gateway's component domain,
// since the agents serve requests from that domain only, and Prosody admits one connection per domain.
// CPU seconds per process are read from /proc/PID/stat at the edges of the measured window.
import os from "node:os";
import { fileURLToPath } from "node:url";
import { startGateway } from "../test/helpers/gateway.js";
import { startStack, Teardown } from "../test/helpers/stack.js";
import { parseArgs, USAGE, type BenchArgs } from "./args.js";
import { clockTicksPerSecond } from "./cpu.js";
import { TEMPERATURE_BODY } from "./device.js";
import type { DevicesConfig } from "./devices-worker.js";
import type { LoadConfig } from "./load-worker.js";
import { measurePath } from "./measure.js";
import { compare, formatTable, writeReport, type BenchReport } from "./report.js";
import { WorkerProcess } from "./worker-process.js";

const CONCURRENCY = 64;
const DEVICE_COUNT = 10;
const RESULTS_DIR = fileURLToPath(new URL("./results/", import.meta.url));

/** Set by the first stop signal: what fails after it is the interruption, not a finding. */
let interrupted = false;

const progress = (message: string): void => {
  process.stderr.write(`[bench] ${message}\n`);
};

async function bench(args: BenchArgs, teardown: Teardown): Promise<BenchReport> {
  const startedAt = new Date().toISOString();
  const hz = clockTicksPerSecond();
  progress("starting Redis and Prosody");
  const stack = teardown.stopLater("stack", await startStack());
  const component = stack.prosody.components[0];
  if (!component) throw new Error("the harness Prosody has no component");
  const ids = Array.from({ length: DEVICE_COUNT }, (_, i) => `bench-${i}`);
  // The same passwords the fleet helper logs in with.
  await stack.prosody.createUsers(ids.map((id) => ({ username: id, password: `pw-${id}` })));

  progress(`starting ${DEVICE_COUNT} devices and their agents`);
  const devicesConfig: DevicesConfig = { service: stack.prosody.service, vhost: stack.prosody.vhost, gatewayDomain: component.domain, ids };
  const devices = WorkerProcess.start("devices", "./devices-worker.ts", devicesConfig);
  teardown.add("devices", () => devices.stop());
  await devices.next("ready", 30_000);

  const plan = {
    concurrency: CONCURRENCY,
    warmupMs: args.warmupS * 1000,
    durationMs: args.durationS * 1000,
    drainMs: 5_000,
    ids,
    expectBody: TEMPERATURE_BODY,
    requestTimeoutMs: 10_000,
  };
  const pids = { prosody: stack.prosody.pid, redis: stack.redis.pid, devices: devices.pid };

  progress(`(a) raw IQ round trip: ${args.warmupS} s warm-up + ${args.durationS} s`);
  const rawConfig: LoadConfig = {
    ...plan,
    mode: "raw-iq",
    componentService: stack.prosody.componentService,
    componentDomain: component.domain,
    componentSecret: component.secret,
    deviceJidTemplate: `{id}@${stack.prosody.vhost}/agent`,
  };
  const a = await measurePath("(a) raw IQ round trip", rawConfig, { gateway: undefined, ...pids }, hz, teardown);

  progress("starting the gateway");
  const gw = teardown.stopLater("gateway", await startGateway(stack));
  devices.send("reconnect");
  await devices.next("reconnected", 30_000);

  progress(`(b) gateway XMPP path: ${args.warmupS} s warm-up + ${args.durationS} s`);
  const httpConfig: LoadConfig = { ...plan, mode: "http", gatewayUrl: gw.url };
  const b = await measurePath("(b) gateway XMPP path", httpConfig, { gateway: process.pid, ...pids }, hz, teardown);

  return {
    startedAt,
    machine: { cpus: os.cpus().length, node: process.version, clockTicksPerSecond: hz },
    settings: { durationS: args.durationS, warmupS: args.warmupS, concurrency: CONCURRENCY, devices: DEVICE_COUNT },
    arrangement: {
      gateway: "the bench process itself (startGateway in-process); idle orchestration only during the window",
      prosody: "harness child process, shared by (a) and (b)",
      redis: "harness child process; used by (b) only",
      devices: "child node process: device HTTP servers + device agents (@xmpp/client)",
      load: "child node process per path: (a) bare @xmpp/component requester, (b) node:http keep-alive clients",
    },
    a,
    b,
    comparison: compare(a, b),
  };
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

  let report: BenchReport;
  try {
    report = await bench(args, teardown);
  } finally {
    progress("stopping");
    await teardown.run();
  }
  const file = await writeReport(report, RESULTS_DIR);
  if (args.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(`\n${formatTable(report)}\nwritten to ${file}\n`);
}

main().catch((err: unknown) => {
  if (interrupted) return; // the signal handler reports and exits
  process.stderr.write(`[bench] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
