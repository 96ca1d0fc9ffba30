// Child process generating the load, so the gateway's event loop is not shared with its own clients.
// mode "raw-iq": a bare component sends the IQs itself, path (a); mode "http": node:http GETs of
// `/devices/{id}/TEMPERATURE` at `baseUrl`, which is the gateway for (b) and (d) and the bare proxy for (c).
// It reports window-start/window-end as they happen (the parent samples CPU then) and
// the result at the end. Started by bench/ratios/measure.ts.
import { runLoad, type Issue, type LoadPlan } from "./load.js";
import { httpGetter } from "../common/http-get.js";
import { responseText, startRawIq } from "./raw-iq.js";
import { emit, fail, listen, workerConfig } from "../common/worker-io.js";

export type LoadConfig = Omit<LoadPlan, "targets"> & {
  ids: string[];
  expectBody: string;
  requestTimeoutMs: number;
} & (
    | { mode: "raw-iq"; componentService: string; componentDomain: string; componentSecret: string; deviceJidTemplate: string }
    | { mode: "http"; baseUrl: string }
  );

interface Driver {
  /** One request to a device; resolves with the body the device sent. */
  call(id: string): Promise<string>;
  close(): Promise<void>;
}

async function driverFor(config: LoadConfig): Promise<Driver> {
  if (config.mode === "http") {
    const http = httpGetter(config.baseUrl, config.concurrency, config.requestTimeoutMs);
    return { call: (id) => http.get(`/devices/${id}/TEMPERATURE`), close: () => Promise.resolve(http.close()) };
  }
  const raw = await startRawIq({
    service: config.componentService,
    domain: config.componentDomain,
    secret: config.componentSecret,
    timeoutMs: config.requestTimeoutMs,
  });
  return {
    call: async (id) => responseText(await raw.get(config.deviceJidTemplate.replaceAll("{id}", id), "/TEMPERATURE")),
    close: () => raw.stop(),
  };
}

async function main(): Promise<void> {
  const config = workerConfig<LoadConfig>();
  let driver: Driver | undefined;
  listen(
    () => undefined,
    () => {
      // The parent is gone or we were told to stop: leave at once, the run is void anyway.
      void (driver?.close() ?? Promise.resolve()).finally(() => process.exit(0));
    },
  );
  driver = await driverFor(config);
  const d = driver;
  // One request per device first: proves every device really answers with its body before timing anything.
  for (const id of config.ids) {
    const body = await d.call(id);
    if (body !== config.expectBody)
      throw new Error(`${id} answered ${JSON.stringify(body)}, expected ${JSON.stringify(config.expectBody)}`);
  }
  emit("ready", { pid: process.pid });
  const issue: Issue = async (id) => {
    await d.call(id);
  };
  const result = await runLoad(
    issue,
    { ...config, targets: config.ids },
    {
      onWindowStart: () => emit("window-start"),
      onWindowEnd: () => emit("window-end"),
    },
  );
  // Close before reporting: for raw-iq the component's domain must be free when the parent starts the gateway.
  await d.close();
  emit("result", { result });
  process.exit(0);
}

main().catch(fail);
