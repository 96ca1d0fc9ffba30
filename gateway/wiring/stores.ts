import type { Config } from "../config.js";
import { AsyncRequests } from "../delivery/async-requests.js";
import { ShadowComparisons } from "../delivery/shadow.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import { PresenceStore } from "../presence/presence-store.js";
import { RedisStore } from "../redis/client.js";
import { CachedRegistry } from "../registry/cached-registry.js";
import { importDevices, loadDevicesFile } from "../registry/import.js";
import { MigrationView } from "../registry/migration.js";
import { RedisDeviceRegistry } from "../registry/redis-registry.js";
import { RegistryChangeFeed } from "../registry/registry-changes.js";
import { REGISTRY_CACHE_MAX_ENTRIES } from "../settings.js";
import { WaveStore } from "../waves/wave-store.js";

/** The Redis side: the connection, and what the instances share through it (registry, presence, results, waves). */
export function buildStores(config: Config, logger: Logger, metrics: Metrics) {
  const redis = new RedisStore(
    { ...config.redis, connectionName: `gateway:${config.instanceId}` },
    { logger, onReadyChange: (ready) => metrics.redisConnected.set(ready ? 1 : 0) },
  );
  // This instance's own writes drop their device from its cache at once; the others' come as notices.
  const registry = new RedisDeviceRegistry(redis, { onChanged: (id) => registryCache.drop(id) });
  /** What device requests read the registry through (GATEWAY_REGISTRY_CACHE_MS; 0: straight from Redis). */
  const registryCache = new CachedRegistry(registry, { maxAgeMs: config.devices.registryCacheMs, maxEntries: REGISTRY_CACHE_MAX_ENTRIES });
  // The cache is used only while this feed hears every change; without a cache nothing needs to listen (the
  // writes are announced all the same, for the instances that have one).
  const changeFeed =
    config.devices.registryCacheMs > 0
      ? new RegistryChangeFeed(redis, registryCache, logger, () => metrics.registryCacheInvalidations.inc())
      : undefined;
  const presence = new PresenceStore(redis, config.presence);
  const shadow = new ShadowComparisons(redis, metrics, logger);
  const waves = new WaveStore(redis);
  return {
    redis,
    registry,
    registryCache,
    presence,
    shadow,
    waves,
    migration: new MigrationView({ counts: registry.counts, presence, shadow, waves }),
    asyncRequests: new AsyncRequests(redis, config.requests.resultTtlMs),
    /**
     * Connects to Redis, with the devices file (GATEWAY_DEVICES_FILE) imported into the registry; then the
     * registry change feed, which opens the registry cache once it hears changes.
     */
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
      // The ordered ids the listing pages through, filled in from the id set (for a registry written before
      // them); when Redis is away now, the first page does it.
      await registry.ensureIndexed().then(
        (added) => {
          if (added > 0) logger.info({ event: "device-ids-indexed", added }, "registry ids added to the ordered index");
        },
        (err: unknown) =>
          logger.warn({ event: "device-ids-not-indexed", err: (err as Error).message }, "registry ids not indexed yet (Redis unreachable)"),
      );
      await changeFeed?.start();
    },
    async stop(): Promise<void> {
      await changeFeed?.stop();
      await redis.stop();
    },
  };
}

export type Stores = ReturnType<typeof buildStores>;
