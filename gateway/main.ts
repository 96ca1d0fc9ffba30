import { ConfigError, exitWithConfigError, loadOrExit } from "../adapters/shared/env.js";
import { loadConfig } from "./config.js";
import { createGateway } from "./compose.js";
import { createLogger } from "./log.js";

/** Process entry: configuration from the environment, signals, exit codes. All wiring is in compose.ts. */
async function main(): Promise<void> {
  const config = loadOrExit(loadConfig);
  const logger = createLogger(config.logLevel);
  const gateway = createGateway(config, logger);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ event: "signal", signal }, "stopping");
    gateway.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "stop failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  await gateway.start();
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) exitWithConfigError(err); // e.g. a bad GATEWAY_DEVICES_FILE
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
