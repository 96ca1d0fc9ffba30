import { ConfigError, exitWithConfigError, loadOrExit, redactUrl } from "../lib/env.js";
import { loadConfig } from "./config.js";
import { createGateway } from "./compose.js";
import { createLogger } from "./log.js";
import { installProcessGuard, ProcessGuard } from "./process-guard.js";
import { gatewayVersion } from "./version.js";

/** Process entry: configuration from the environment, signals, exit codes. All wiring is in compose.ts (and its area builders, wiring/). */
async function main(): Promise<void> {
  const config = loadOrExit(loadConfig);
  const logger = createLogger(config.logLevel);
  // Only when the OTEL_ variables ask for it (README, "Tracing"); else there is no provider, and requests do no
  // tracing work. Imported only then: the SDK and its exporters are some 350 modules, about 10 MB of memory.
  const tracing = config.tracing
    ? (await import("../lib/tracing/sdk.js")).startTracingSdk(config.tracing, { version: gatewayVersion(), instanceId: config.instanceId })
    : undefined;
  const gateway = createGateway(config, logger, tracing ? { tracerProvider: tracing.provider } : {});
  if (config.tracing)
    logger.info({ event: "tracing", url: redactUrl(config.tracing.url), protocol: config.tracing.protocol }, "tracing on");
  let stopping: Promise<void> | undefined;
  // One stop, whoever asks first (a signal, or the crash policy), and the same promise for the second. The
  // spans still batched are exported last, after the requests they describe are over.
  const stopOnce = () => (stopping ??= gateway.stop().finally(() => flushTraces()));
  const flushTraces = async () => {
    await tracing
      ?.shutdown()
      .catch((err: unknown) => logger.warn({ event: "tracing-not-flushed", err: (err as Error).message }, "spans not exported"));
  };
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
