// Child process generating the load, so the gateway's event loop is not shared with its own clients.
// Driver "raw-iq": a bare component sends the IQs itself, path (a); driver "http": keep-alive GETs
// (../common/http-get.ts) of `/devices/{id}/TEMPERATURE` at `baseUrl`, which is the gateway for (b) and (d)
// and the bare proxy for (c). Shape "closed-loop": N clients for a time window (load.ts); "slices": the same
// in several windows, each run when the parent sends "slice" (it alternates two paths' workers: measure.ts,
// measureAlternating), reported together; "sequential": one client for a count of requests (sequential.ts).
// It reports window-start/window-end as they happen (the parent samples CPU then) and the result at the end.
// Started by bench/ratios/measure.ts.
import { setTimeout as delay } from "node:timers/promises";
import {
  loadResult,
  mergeWindows,
  runLoad,
  runWindow,
  type Issue,
  type LoadHooks,
  type LoadPlan,
  type LoadResult,
  type WindowCounts,
} from "./load.js";
import { httpGetter } from "../common/http-get.js";
import { responseText, startRawIq } from "./raw-iq.js";
import { runSequential, type SequentialPlan } from "./sequential.js";
import { emit, fail, listen, workerConfig } from "../common/worker-io.js";

export type LoadShape =
  | ({ kind: "closed-loop" } & Omit<LoadPlan, "targets">)
  /** `slices` windows of `durationMs`; the first after `warmupMs`, each later one after `rampMs`. */
  | ({ kind: "slices"; slices: number; rampMs: number } & Omit<LoadPlan, "targets">)
  | ({ kind: "sequential" } & Omit<SequentialPlan, "targets">);

export type LoadDriver =
  | { mode: "raw-iq"; componentService: string; componentDomain: string; componentSecret: string; deviceJidTemplate: string }
  | { mode: "http"; baseUrl: string };

export interface LoadConfig {
  /** The devices, asked in turn. */
  ids: string[];
  expectBody: string;
  requestTimeoutMs: number;
  shape: LoadShape;
  driver: LoadDriver;
  /**
   * Before anything is timed, one request to each device must bring back its body, so that no figure is
   * taken with a device missing. A device that fails is asked again until `retryForMs` have passed (the
   * agents may still be logging in: (a) has no gateway to count them online); null: no check (the same
   * path was checked by its closed-loop run just before).
   */
  check: { retryForMs: number } | null;
}

/** Check requests outstanding at once: thousands of devices are checked in seconds. */
const CHECK_CONCURRENCY = 64;
const CHECK_RETRY_MS = 250;

interface Driver {
  /** One request to a device; resolves with the body the device sent. */
  call(id: string): Promise<string>;
  close(): Promise<void>;
}

async function driverFor(config: LoadConfig): Promise<Driver> {
  const d = config.driver;
  if (d.mode === "http") {
    const sockets = config.shape.kind === "sequential" ? CHECK_CONCURRENCY : Math.max(config.shape.concurrency, CHECK_CONCURRENCY);
    const http = httpGetter(d.baseUrl, sockets, config.requestTimeoutMs);
    return { call: (id) => http.get(`/devices/${id}/TEMPERATURE`), close: () => Promise.resolve(http.close()) };
  }
  const raw = await startRawIq({
    service: d.componentService,
    domain: d.componentDomain,
    secret: d.componentSecret,
    timeoutMs: config.requestTimeoutMs,
  });
  return {
    call: async (id) => responseText(await raw.get(d.deviceJidTemplate.replaceAll("{id}", id), "/TEMPERATURE")),
    close: () => raw.stop(),
  };
}

/** One request per device, CHECK_CONCURRENCY at a time; a wrong body fails at once, a failure is retried until the bound. */
async function checkEachDevice(d: Driver, config: LoadConfig, retryForMs: number): Promise<void> {
  const deadline = Date.now() + retryForMs;
  const queue = [...config.ids];
  const checker = async (): Promise<void> => {
    for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
      for (;;) {
        let body: string;
        try {
          body = await d.call(id);
        } catch (err) {
          if (Date.now() >= deadline) throw new Error(`${id} does not answer: ${(err as Error).message}`, { cause: err });
          await delay(CHECK_RETRY_MS);
          continue;
        }
        if (body !== config.expectBody)
          throw new Error(`${id} answered ${JSON.stringify(body)}, expected ${JSON.stringify(config.expectBody)}`);
        break;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(CHECK_CONCURRENCY, config.ids.length) }, checker));
}

/** The closed loop in `shape.slices` windows, each started by the parent's "slice" and answered with "slice-done". */
async function runSlices(
  issue: Issue,
  shape: Extract<LoadShape, { kind: "slices" }>,
  targets: readonly string[],
  hooks: LoadHooks,
  nextCommand: () => Promise<string>,
): Promise<LoadResult> {
  const windows: WindowCounts[] = [];
  for (let i = 0; i < shape.slices; i++) {
    const command = await nextCommand();
    if (command !== "slice") throw new Error(`expected "slice", got ${JSON.stringify(command)}`);
    const warmupMs = i === 0 ? shape.warmupMs : shape.rampMs;
    windows.push(
      await runWindow(
        issue,
        { concurrency: shape.concurrency, warmupMs, durationMs: shape.durationMs, drainMs: shape.drainMs, targets },
        hooks,
      ),
    );
    emit("slice-done");
  }
  return loadResult(mergeWindows(windows));
}

async function main(): Promise<void> {
  const config = workerConfig<LoadConfig>();
  let driver: Driver | undefined;
  const commands: string[] = [];
  let commandArrived: (() => void) | undefined;
  const nextCommand = async (): Promise<string> => {
    while (commands.length === 0) await new Promise<void>((resolve) => (commandArrived = resolve));
    return commands.shift() as string;
  };
  listen(
    (command) => {
      commands.push(command);
      commandArrived?.();
    },
    () => {
      // The parent is gone or we were told to stop: leave at once, the run is void anyway.
      void (driver?.close() ?? Promise.resolve()).finally(() => process.exit(0));
    },
  );
  driver = await driverFor(config);
  const d = driver;
  if (config.check) await checkEachDevice(d, config, config.check.retryForMs);
  emit("ready", { pid: process.pid });
  const issue: Issue = async (id) => {
    await d.call(id);
  };
  const hooks = { onWindowStart: () => emit("window-start"), onWindowEnd: () => emit("window-end") };
  const shape = config.shape;
  const result =
    shape.kind === "closed-loop"
      ? await runLoad(issue, { ...shape, targets: config.ids }, hooks)
      : shape.kind === "slices"
        ? await runSlices(issue, shape, config.ids, hooks, nextCommand)
        : await runSequential(issue, { ...shape, targets: config.ids }, hooks);
  // Close before reporting: for raw-iq the component's domain must be free when the parent starts the gateway.
  await d.close();
  emit("result", { result });
  process.exit(0);
}

main().catch(fail);
