import type { Config } from "../config.js";
import { AsyncRequests } from "../delivery/async-requests.js";
import { ShadowComparisons } from "../delivery/shadow.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { PresenceStore } from "../presence/presence-store.js";
import { RedisStore } from "../redis/client.js";
import { importDevices, loadDevicesFile } from "../registry/import.js";
import { MigrationView } from "../registry/migration.js";
import { RedisDeviceRegistry } from "../registry/redis-registry.js";

/** The Redis side: the connection, and what the instances share through it (registry, presence, results). */
export function buildStores(config: Config, logger: Logger, metrics: Metrics) {
  const redis = new RedisStore(
    { ...config.redis, connectionName: `gateway:${config.instanceId}` },
    { logger, onReadyChange: (ready) => metrics.redisConnected.set(ready ? 1 : 0) },
  );
  const registry = new RedisDeviceRegistry(redis);
  const presence = new PresenceStore(redis, config.presence);
  const shadow = new ShadowComparisons(redis, metrics, logger);
  return {
    redis,
    registry,
    presence,
    shadow,
    migration: new MigrationView({ registry, presence, shadow }),
    asyncRequests: new AsyncRequests(redis, config.requests.resultTtlMs),
    /** Connects to Redis, with the devices file (GATEWAY_DEVICES_FILE) imported into the registry. */
    async start(): Promise<void> {
      // A bad devices file stops the start before anything connects.
      const imported = config.devices.file !== undefined ? await loadDevicesFile(config.devices.file) : undefined;
      await redis.start();
      if (imported) {
        const counts = await importDevices(registry, imported).catch(async (err: unknown) => {
          await redis.stop();
          throw err;
        });
        logger.info({ event: "devices-imported", file: config.devices.file, ...counts }, "devices file imported");
      }
      // Entries written before device ids were canonical (README "Device ids"): moved to their lower-case id.
      await registry.canonicalizeIds().then(
        ({ renamed, dropped }) => {
          if (renamed.length + dropped.length > 0)
            logger.warn({ event: "device-ids-canonicalized", renamed, dropped }, "registry entries moved to their lower-case id");
        },
        (err: unknown) =>
          logger.warn(
            { event: "device-ids-not-canonicalized", err: (err as Error).message },
            "registry ids not checked for capitals (Redis unreachable)",
          ),
      );
    },
    stop: () => redis.stop(),
  };
}

export type Stores = ReturnType<typeof buildStores>;
