import { ConfigError, exitWithConfigError, loadOrExit } from "../lib/env.js";
import { loadConfig } from "./config.js";
import { createGateway } from "./compose.js";
import { createLogger } from "./log.js";
import { installProcessGuard, ProcessGuard } from "./process-guard.js";

/** Process entry: configuration from the environment, signals, exit codes. All wiring is in compose.ts (and its area builders, wiring/). */
async function main(): Promise<void> {
  const config = loadOrExit(loadConfig);
  const logger = createLogger(config.logLevel);
  const gateway = createGateway(config, logger);
  let stopping: Promise<void> | undefined;
  // One stop, whoever asks first (a signal, or the crash policy), and the same promise for the second.
  const stopOnce = () => (stopping ??= gateway.stop());
  // Before anything connects: an error nobody caught follows the crash policy (process-guard.ts), never
  // Node's default, which ends the process with every request in flight.
  installProcessGuard(
    process,
    new ProcessGuard({
      logger,
      metrics: gateway.metrics,
      drain: stopOnce,
      exit: (code) => process.exit(code),
      setExitCode: (code) => {
        process.exitCode = code;
      },
      hardExitAfterMs: config.drainGraceMs + config.drainTimeoutMs + 5000,
    }),
  );
  const shutdown = (signal: string) => {
    if (stopping) return;
    logger.info({ event: "signal", signal }, "stopping");
    stopOnce().then(
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
