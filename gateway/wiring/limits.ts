import type { Config } from "../config.js";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import { Admission } from "../limits/admission.js";
import { ByteBudget } from "../limits/byte-budget.js";
import { ClientRateLimiter } from "../limits/client-rate-limiter.js";
import { DeviceLimiter } from "../limits/device-limiter.js";
import { DeviceQueue } from "../limits/device-queue.js";
import { SlotReuse } from "../limits/slot-reuse.js";
import { InFlightCap } from "../limits/in-flight-cap.js";
import { SlotNotices } from "../limits/slot-notices.js";
import type { Metrics } from "../metrics/metrics.js";
import type { RedisStore } from "../redis/client.js";
import { OVERLOAD_RETRY_AFTER_S } from "../settings.js";

/**
 * The instance's bounds: requests in flight (GATEWAY_MAX_IN_FLIGHT), bytes held (GATEWAY_MAX_BUFFERED_BYTES),
 * the per-client rate, and each device's in-flight slots (shared by the instances through Redis).
 */
export function buildLimits(config: Config, logger: Logger, metrics: Metrics, redis: RedisStore) {
  // Request and reply bodies held in memory, all requests together.
  metrics.admissionRefusals.inc({ reason: "memory" }, 0);
  const budget = new ByteBudget(config.limits.maxBufferedBytes, { onRefused: () => metrics.admissionRefusals.inc({ reason: "memory" }) });
  const cap = new InFlightCap(config.limits.maxInFlight);
  const slotNotices = new SlotNotices(redis, config.instanceId, logger);
  const slots = new SlotReuse(
    new DeviceLimiter(redis, { instanceId: config.instanceId, retryAfterS: config.requests.busyRetryAfterS }),
    config.devices.slotReuseMs,
  );
  const deviceQueue = new DeviceQueue(
    {
      limiter: slots,
      notices: slotNotices,
      metrics,
    },
    // Waiting requests hold a place in the instance's ceiling, except those of Prefer: respond-async (their
    // client has its 202): the queue bounds its total by the same number itself.
    { maxPerDevice: config.devices.queueMax, maxTotal: config.limits.maxInFlight },
  );
  const rate = config.limits.clientRate;
  const admission = new Admission({
    cap,
    ...(rate ? { rate: { limiter: new ClientRateLimiter(redis, rate), key: rate.key } } : {}),
    metrics,
    overloadRetryAfterS: OVERLOAD_RETRY_AFTER_S,
  });
  return {
    budget,
    cap,
    deviceQueue,
    slots,
    admission,
    /** The drain bound: requests still waiting for a device's slot are not sent (GW_SHUTTING_DOWN). */
    failWaiting: () => deviceQueue.failAll(new GatewayError("GW_SHUTTING_DOWN")),
    start: () => Promise.all([slotNotices.start(), slots.start()]).then(() => undefined),
    // Parked slots go back while Redis is still there (the stores stop after).
    stop: () => Promise.all([slots.stop(), slotNotices.stop()]).then(() => undefined),
  };
}

export type Limits = ReturnType<typeof buildLimits>;
