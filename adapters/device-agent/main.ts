import { Agent } from "node:http";
import { pino } from "pino";
import { DeviceAgent } from "./agent.js";
import { loadOrExit } from "../../lib/env.js";
import { loadAgentConfig } from "./config.js";

/** Process entry of the device agent: environment, signals, one or many device identities. */
async function main(): Promise<void> {
  const config = loadOrExit(loadAgentConfig);
  const log = pino({ level: config.logLevel, timestamp: pino.stdTimeFunctions.isoTime });
  const httpAgent = new Agent({ keepAlive: true });
  const agents = config.agents.map((opts) => new DeviceAgent(opts, { log, httpAgent }));
  const shutdown = (signal: string) => {
    log.info({ event: "signal", signal }, "stopping");
    void Promise.allSettled(agents.map((a) => a.stop())).then(() => {
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
