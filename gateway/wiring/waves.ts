import type { Config } from "../config.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import type { DeviceRecord } from "../registry/device.js";
import { WaveController } from "../waves/controller.js";
import { WaveCounter } from "../waves/outcome-counter.js";
import type { Stores } from "./stores.js";

/**
 * Migration waves (README, "Migrating a fleet"): the counter the access log tells each device request's
 * outcome, and the controller that creates waves and judges them every GATEWAY_WAVE_CHECK_MS.
 */
export function buildWaves(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  stores: Stores,
  deps: { areOnline(records: readonly DeviceRecord[]): Promise<boolean[]> },
) {
  for (const reason of ["threshold", "manual"]) metrics.migrationWaveRollbacks.inc({ reason }, 0);
  const counter = new WaveCounter();
  const controller = new WaveController({
    store: stores.waves,
    registry: stores.registry,
    counter,
    metrics,
    logger,
    areOnline: (records) => deps.areOnline(records),
    instanceId: config.instanceId,
    checkMs: config.waves.checkMs,
  });
  return { counter, controller, start: () => controller.start(), stop: () => controller.stop() };
}

export type Waves = ReturnType<typeof buildWaves>;
