import { Agent } from "node:http";
import { pino } from "pino";
import { DeviceAgent } from "./agent.js";
import { loadOrExit, redactUrl } from "../../lib/env.js";
import { Tracing } from "../../lib/tracing/tracing.js";
import { loadAgentConfig } from "./config.js";
import { AGENT_SERVICE_NAME } from "./settings.js";

/** Process entry of the device agent: environment, signals, one or many device identities. */
async function main(): Promise<void> {
  const config = loadOrExit(loadAgentConfig);
  const log = pino({ level: config.logLevel, timestamp: pino.stdTimeFunctions.isoTime });
  const httpAgent = new Agent({ keepAlive: true });
  // Only when the OTEL_ variables ask for it (README, "Tracing"): one provider for every identity of the process.
  // Imported only then: the SDK and its exporters are some 350 modules, about 10 MB of memory.
  const sdk = config.tracing ? (await import("../../lib/tracing/sdk.js")).startTracingSdk(config.tracing) : undefined;
  const tracing = sdk ? new Tracing(sdk.provider, { name: AGENT_SERVICE_NAME }) : undefined;
  if (config.tracing) log.info({ event: "tracing", url: redactUrl(config.tracing.url), protocol: config.tracing.protocol }, "tracing on");
  const agents = config.agents.map((opts) => new DeviceAgent(opts, { log, httpAgent, ...(tracing ? { tracing } : {}) }));
  const shutdown = (signal: string) => {
    log.info({ event: "signal", signal }, "stopping");
    void Promise.allSettled(agents.map((a) => a.stop()))
      // The spans still batched are exported before the process goes.
      .then(() => sdk?.shutdown().catch(() => undefined))
      .then(() => {
        httpAgent.destroy();
        process.exit(0);
      });
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
  await Promise.all(agents.map((a) => a.start()));
  log.info({ event: "started", devices: agents.length }, "device agent running");
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
