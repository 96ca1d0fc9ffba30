import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Transport as DeviceTransport } from "../registry/device.js";

export type DropReason = "late" | "duplicate" | "unknown" | "spoofed" | "malformed";
/** The transport label: a registry transport, or "none" for a request that reached no device. */
export type Transport = DeviceTransport | "none";

/**
 * All metrics of one gateway instance, on a registry of its own (no prom-client global state), named as
 * README, "Operations endpoints" says. Labels take bounded values only: never a device id or a path.
 */
/** Values read from elsewhere at scrape time; set by the composition root once their owners exist. */
export interface MetricSources {
  devicesOnline?: () => Promise<number>;
  devicesByTransport?: () => Promise<Record<string, number>>;
  /** XMPP exchanges of this instance waiting for their device's reply. */
  iqInflight?: () => number;
  /** Device requests this instance holds now (what GATEWAY_MAX_IN_FLIGHT bounds). */
  requestsInFlight?: () => number;
  deviceQueueWaiting?: () => number;
  /** Request and reply bytes held in memory now (what GATEWAY_MAX_BUFFERED_BYTES bounds). */
  bufferedBytes?: () => number;
  /** The HTTP pass-through's connections to devices, by state. */
  proxyConnections?: () => { active: number; idle: number; waiting: number };
  /** Registry lookups so far, by how they were answered (counted by the registry cache, reported at scrape time). */
  registryCacheLookups?: () => { hit: number; miss: number; bypass: number };
  /** Device slots handed to requests so far: taken from Redis, or lent again on this instance (limits/slot-reuse.ts). */
  deviceSlots?: () => { redis: number; reused: number };
  /** Correlation records written to Redis, and those never written: their exchange ended while held. */
  correlationRecords?: () => { written: number; unneeded: number };
  /** Migration waves by state (shared by all instances). */
  migrationWaves?: () => Promise<Record<string, number>>;
}

export function createMetrics(registry: Registry = new Registry(), sources: MetricSources = {}, version = "unknown") {
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  // prom-client also names three gauges with a `_total` suffix, which promtool rejects (a counter's suffix).
  // They are only sums of nodejs_active_handles, _requests and _resources (by type), which stay.
  for (const misnamed of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    registry.removeSingleMetric(misnamed);
  }
  const buildInfo = new Gauge({
    name: "gateway_build_info",
    help: "Always 1; its labels say which gateway version (and Node.js) this instance runs.",
    labelNames: ["version", "node"] as const,
    registers,
  });
  buildInfo.set({ version, node: process.version }, 1);
  /** A counter by `label` whose values are a part's own running totals, read at scrape time (catchUp). */
  const totalsCounter = <L extends string>(name: string, help: string, label: L, totals: (() => Record<string, number>) | undefined) => {
    const reported = new Map<string, number>();
    return new Counter<L>({
      name,
      help,
      labelNames: [label],
      registers,
      collect() {
        if (totals) catchUp(this, label, totals(), reported);
      },
    });
  };
  return {
    registry,
    httpRequests: new Counter({
      name: "gateway_http_requests_total",
      help: "HTTP requests answered, by transport, method and status class.",
      labelNames: ["transport", "method", "status_class"] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: "gateway_http_request_duration_seconds",
      help: "Time from request to response, by transport.",
      labelNames: ["transport"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    admissionRefusals: new Counter({
      name: "gateway_admission_refusals_total",
      help: "Device requests refused before any device work: instance in-flight ceiling (overloaded), client rate limit (rate_limited), memory budget for request and reply bodies (memory).",
      labelNames: ["reason"] as const,
      registers,
    }),
    // Read at scrape time, as the other levels are: set on every exchange's start and end, it cost two
    // gauge updates a request.
    iqInflight: new Gauge({
      name: "gateway_xmpp_iq_inflight",
      help: "XMPP exchanges waiting for a device reply.",
      registers,
      collect() {
        if (sources.iqInflight) this.set(sources.iqInflight());
      },
    }),
    iqTimeouts: new Counter({ name: "gateway_xmpp_iq_timeouts_total", help: "XMPP exchanges that reached their deadline.", registers }),
    iqResends: new Counter({
      name: "gateway_xmpp_iq_resends_total",
      help: "Idempotent requests sent to their device again because another instance's component connection closed while they waited.",
      registers,
    }),
    repliesDropped: new Counter({
      name: "gateway_replies_dropped_total",
      help: "Device replies and chunks dropped instead of being written to a client, by reason.",
      labelNames: ["reason"] as const,
      registers,
    }),
    repliesForwarded: new Counter({
      name: "gateway_replies_forwarded_total",
      help: "Device replies (IQ results) and body chunks forwarded to the instance that owns the exchange.",
      labelNames: ["kind"] as const,
      registers,
    }),
    devicesOnline: new Gauge({
      name: "gateway_devices_online",
      help: "Devices whose presence is current (shared by all instances).",
      registers,
      async collect() {
        if (sources.devicesOnline) this.set(await sources.devicesOnline().catch(() => 0));
      },
    }),
    devices: new Gauge({
      name: "gateway_devices",
      help: "Devices in the registry, by transport (the migration's progress).",
      labelNames: ["transport"] as const,
      registers,
      async collect() {
        if (!sources.devicesByTransport) return;
        const counts = await sources.devicesByTransport().catch(() => undefined);
        for (const [transport, n] of Object.entries(counts ?? {})) this.set({ transport }, n);
      },
    }),
    deviceQueueWaiting: new Gauge({
      name: "gateway_device_queue_waiting",
      help: "Device requests of this instance waiting for one of their device's in-flight slots (GATEWAY_DEVICE_QUEUE_MAX per device).",
      registers,
      collect() {
        if (sources.deviceQueueWaiting) this.set(sources.deviceQueueWaiting());
      },
    }),
    deviceQueueRefusals: new Counter({
      name: "gateway_device_queue_refusals_total",
      help: "Device requests refused with 429 GW_DEVICE_BUSY because the wait for a slot was full: the device's queue (device) or the instance's (instance).",
      labelNames: ["bound"] as const,
      registers,
    }),
    requestsInFlight: new Gauge({
      name: "gateway_requests_inflight",
      help: "Device requests this instance holds now, every transport (GATEWAY_MAX_IN_FLIGHT bounds it).",
      registers,
      collect() {
        if (sources.requestsInFlight) this.set(sources.requestsInFlight());
      },
    }),
    bufferedBytes: new Gauge({
      name: "gateway_buffered_bytes",
      help: "Request and reply body bytes this instance holds in memory now (GATEWAY_MAX_BUFFERED_BYTES bounds it).",
      registers,
      collect() {
        if (sources.bufferedBytes) this.set(sources.bufferedBytes());
      },
    }),
    proxyConnections: new Gauge({
      name: "gateway_proxy_connections",
      help: "HTTP pass-through connections to devices: active (carrying a request), idle (kept alive), waiting (requests queued for a connection).",
      labelNames: ["state"] as const,
      registers,
      collect() {
        if (!sources.proxyConnections) return;
        for (const [state, n] of Object.entries(sources.proxyConnections())) this.set({ state }, n);
      },
    }),
    registryCacheLookups: totalsCounter(
      "gateway_registry_cache_lookups_total",
      "Registry lookups of device requests: answered from memory (hit), read from Redis (miss), read from Redis because the cache was off or not hearing change notices (bypass).",
      "result",
      sources.registryCacheLookups,
    ),
    deviceSlots: totalsCounter(
      "gateway_device_slots_total",
      "In-flight slots handed to device requests: taken from Redis (redis), or lent again from a slot this instance had just given back (reused).",
      "source",
      sources.deviceSlots,
    ),
    correlationRecords: totalsCounter(
      "gateway_correlation_records_total",
      "XMPP exchanges' correlation records: written to Redis (written), or never written because the exchange ended while the record was held on this instance (unneeded).",
      "fate",
      sources.correlationRecords,
    ),
    registryCacheInvalidations: new Counter({
      name: "gateway_registry_cache_invalidations_total",
      help: "Registry change notices this instance received (each drops one device from its registry cache, or all).",
      registers,
    }),
    shadowComparisons: new Counter({
      name: "gateway_shadow_comparisons_total",
      help: "Requests to shadow-mode devices answered both ways and compared, by outcome.",
      labelNames: ["outcome"] as const,
      registers,
    }),
    shadowMismatches: new Counter({
      name: "gateway_shadow_mismatches_total",
      help: "Shadow comparisons whose XMPP answer differed from the HTTP one (per device: GET /admin/migration).",
      registers,
    }),
    migrationWaves: new Gauge({
      name: "gateway_migration_waves",
      help: "Migration waves by state: watching, completed, rolled-back (shared by all instances).",
      labelNames: ["state"] as const,
      registers,
      async collect() {
        if (!sources.migrationWaves) return;
        const counts = await sources.migrationWaves().catch(() => undefined);
        for (const [state, n] of Object.entries(counts ?? {})) this.set({ state }, n);
      },
    }),
    migrationWaveRollbacks: new Counter({
      name: "gateway_migration_wave_rollbacks_total",
      help: "Migration waves this instance rolled back, by reason: threshold (the wave's error rate exceeded the baseline's by more than allowed), manual (an operator).",
      labelNames: ["reason"] as const,
      registers,
    }),
    migrationWaveRequests: new Gauge({
      name: "gateway_migration_wave_requests",
      help: "Requests counted for each watched migration wave, all instances together as last read from Redis: side wave or baseline, outcome ok or error. Series of ended waves are removed.",
      labelNames: ["wave", "side", "outcome"] as const,
      registers,
    }),
    xmppConnected: new Gauge({ name: "gateway_xmpp_connected", help: "1 while the XMPP component connection is online.", registers }),
    redisConnected: new Gauge({ name: "gateway_redis_connected", help: "1 while Redis is ready.", registers }),
    proxyErrors: new Counter({
      name: "gateway_proxy_errors_total",
      help: "HTTP pass-through requests that failed, by catalogue error code (GW_UPSTREAM_UNREACHABLE, GW_UPSTREAM_TIMEOUT, ...).",
      labelNames: ["code"] as const,
      registers,
    }),
    proxyBadReplies: new Counter({
      name: "gateway_proxy_bad_replies_total",
      help: "Device HTTP responses the pass-through refused to relay, by reason (a head check, or node's parser error code).",
      labelNames: ["reason"] as const,
      registers,
    }),
    proxyRetries: new Counter({
      name: "gateway_proxy_retries_total",
      help: "HTTP pass-through requests sent again after a kept-alive connection the device had closed (idempotent, replayable body).",
      registers,
    }),
    unexpectedErrors: new Counter({
      name: "gateway_unexpected_errors_total",
      help: "Errors that reached the process level (uncaughtException, unhandledRejection): each one is a bug.",
      labelNames: ["kind"] as const,
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * A counter kept as plain numbers on the request path (cheaper than a labelled inc per request) catches up
 * at scrape time: each label value gets what its count grew by since the last scrape.
 */
function catchUp<L extends string>(counter: Counter<L>, label: L, counts: Record<string, number>, reported: Map<string, number>): void {
  for (const [value, n] of Object.entries(counts)) {
    counter.inc({ [label]: value } as Partial<Record<L, string>>, Math.max(0, n - (reported.get(value) ?? 0)));
    reported.set(value, n);
  }
}

export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}
