import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { EnvReader, type Env, type LogLevel, type SettingFallback, type SettingValue } from "../lib/env.js";
import { parseClientKeyMode, type ClientKeyMode } from "./limits/client-key.js";
import type { RedisOptions } from "./redis/client.js";
import { parseHostPorts, type HostPort } from "./redis/host-ports.js";
import { readTracingConfig, type TracingConfig } from "../lib/tracing/settings.js";
import { GATEWAY_SERVICE_NAME, GATEWAY_SETTINGS, type GatewaySettingName } from "./settings.js";

/** Everything the gateway is configured with; every field comes from one environment variable (settings.ts, README table). */
export interface Config {
  http: {
    host: string;
    port: number;
    maxBodyBytes: number;
    /**
     * GATEWAY_DEVICE_HOST_SUFFIX, lower-cased: `Host: {id}.{suffix}` addresses device `{id}` (README, "Device requests");
     * absent: no Host addressing.
     */
    deviceHostSuffix?: string;
    /** GATEWAY_METRICS_PORT: `/metrics` is served on this port only (same host); absent: on the main port. */
    metricsPort?: number;
    /** A request's head must be in this long after its first byte (408 GW_REQUEST_TIMEOUT: slowloris). */
    headersTimeoutMs: number;
    /** The whole request, head and body, must be in this long after its first byte. */
    receiveTimeoutMs: number;
    /** More header fields than this: 431 GW_HEADERS_TOO_LARGE. */
    maxHeaders: number;
    /**
     * A connection answered before its request's body was in (413) half-closes and reads the rest for at
     * most this long, so a client that sends its whole body before it reads gets the answer (linger.ts); 0: off.
     */
    lingerMs: number;
    /** A lingering connection is closed once nothing came in for this long. */
    lingerIdleMs: number;
  };
  /**
   * REDIS_URL, REDIS_KEY_PREFIX, REDIS_COMMAND_TIMEOUT_MS, REDIS_USERNAME, REDIS_PASSWORD(_FILE), REDIS_TLS_CA_FILE
   * (read); in Sentinel mode REDIS_SENTINELS, REDIS_SENTINEL_NAME, REDIS_SENTINEL_PASSWORD(_FILE), REDIS_SENTINEL_TLS;
   * in Cluster mode REDIS_CLUSTER_NODES, REDIS_CLUSTER_TLS.
   */
  redis: RedisOptions;
  xmpp: { service: string; domain: string; secret: string };
  devices: {
    jidTemplate: string;
    /** Devices without a registry entry: `xmpp` at the JID template, or `none` (404 GW_UNKNOWN_DEVICE). */
    defaultTransport: "xmpp" | "none";
    /** maxInFlight of a device whose entry does not say. */
    maxInFlight: number;
    /**
     * GATEWAY_DEVICE_QUEUE_MAX: requests of one device that wait on this instance for one of its slots,
     * beyond maxInFlight; beyond, 429 GW_DEVICE_BUSY. 0: none wait (429 as soon as the device is full).
     */
    queueMax: number;
    /**
     * GATEWAY_DEVICE_SLOT_REUSE_MS: a slot taken from Redis is lent to this instance's next requests of the
     * device for this long after the take (limits/slot-reuse.ts); 0: each request takes and gives back its own.
     */
    slotReuseMs: number;
    /** JSON or YAML list of registry entries imported at start. */
    file?: string;
    /**
     * GATEWAY_REGISTRY_CACHE_MS: a registry answer kept in memory is read again once this old, change notice
     * or not (registry/cached-registry.ts); 0: no cache, the registry is read on every request.
     */
    registryCacheMs: number;
  };
  limits: {
    /** GATEWAY_MAX_IN_FLIGHT: device requests this instance holds at once; beyond, 503 GW_OVERLOADED. */
    maxInFlight: number;
    /**
     * Per-client rate limit shared by the instances: GATEWAY_CLIENT_RATE_LIMIT requests per
     * GATEWAY_CLIENT_RATE_WINDOW_S on average, up to GATEWAY_CLIENT_RATE_BURST at once. Absent
     * (GATEWAY_CLIENT_RATE_LIMIT=0, the default): off.
     */
    clientRate?: { ratePerS: number; burst: number; key: ClientKeyMode };
    /**
     * GATEWAY_MAX_BUFFERED_BYTES: request and reply bodies this instance holds in memory at once, all
     * requests together; beyond, 503 GW_OVERLOADED. At least GATEWAY_MAX_BODY_BYTES and GATEWAY_MAX_REPLY_BYTES.
     */
    maxBufferedBytes: number;
  };
  /** Admin API bearer token; absent: the admin API is off. */
  admin: { token?: string };
  /**
   * Migration waves (README, "Migrating a fleet"): GATEWAY_WAVE_CHECK_MS, how often this instance adds its
   * counts to the waves' counts in Redis and checks each watched wave for a breach or the end of its window.
   */
  waves: { checkMs: number };
  exchange: {
    timeoutMs: number;
    maxReplyBytes: number;
    chunkThresholdBytes: number;
    chunkSizeBytes: number;
    offlineRetryAfterS: number;
    /**
     * GATEWAY_CORRELATION_HOLD_MS: an exchange's correlation record waits this long on the instance before
     * it is written, and is never written if the exchange ends first (CorrelationStore).
     */
    recordHoldMs: number;
  };
  presence: {
    /** A device's presence counts this long after its last announcement (agents re-announce every minute). */
    onlineTtlMs: number;
    /** A device that said goodbye is refused at once for this long, or until it announces itself again. */
    offlineTtlMs: number;
  };
  requests: {
    /** How long asynchronous results stay readable at /requests/{id}. */
    resultTtlMs: number;
    /** How long an asynchronous request waits in the queue for an offline device. */
    queueTtlMs: number;
    /** Bounds of the offline queue (GATEWAY_QUEUE_MAX_*): entries and bytes, per device and in all. */
    queue: { maxPerDevice: number; maxBytesPerDevice: number; maxTotal: number; maxTotalBytes: number };
    /** How long an Idempotency-Key remembers its request and outcome. */
    idempotencyTtlMs: number;
    /** Retry-After on 429 GW_DEVICE_BUSY. */
    busyRetryAfterS: number;
  };
  /** After SIGTERM: how long readiness fails while requests are still served (load balancers notice). */
  drainGraceMs: number;
  /** How long a stopping instance lets requests in flight finish. */
  drainTimeoutMs: number;
  instanceId: string;
  logLevel: LogLevel;
  /** OpenTelemetry tracing: undefined when the OTEL_ variables do not turn it on (README, "Tracing"). */
  tracing: TracingConfig | undefined;
}

/**
 * The gateway's Config from its environment: every variable is read, validated and defaulted as its entry
 * in GATEWAY_SETTINGS (settings.ts) says; the relations between variables are checked here. All problems
 * are reported at once (ConfigError).
 */
export function loadConfig(env: Env): Config {
  const r = new EnvReader(env);
  const read = <K extends GatewaySettingName>(
    name: K,
    ...fallback: SettingFallback<(typeof GATEWAY_SETTINGS)[K]>
  ): SettingValue<(typeof GATEWAY_SETTINGS)[K]> => r.read(name, GATEWAY_SETTINGS[name], ...fallback);
  const jidTemplate = read("DEVICE_JID_TEMPLATE");
  const domain = read("XMPP_COMPONENT_DOMAIN");
  const adminToken = read("GATEWAY_ADMIN_TOKEN");
  const devicesFile = read("GATEWAY_DEVICES_FILE");
  const hostSuffix = read("GATEWAY_DEVICE_HOST_SUFFIX");

  const clientRate = read("GATEWAY_CLIENT_RATE_LIMIT");
  const clientKeyMode = parseClientKeyMode(read("GATEWAY_CLIENT_KEY"));

  const redisUsername = read("REDIS_USERNAME");
  const redisPassword = read("REDIS_PASSWORD");
  const redisCaFile = read("REDIS_TLS_CA_FILE");
  let redisCa: string | undefined;
  if (redisCaFile !== undefined) {
    // Read now, so that a wrong path stops the start instead of failing every reconnect.
    try {
      redisCa = readFileSync(redisCaFile, "utf8");
    } catch (err) {
      r.problems.push(
        `REDIS_TLS_CA_FILE=${JSON.stringify(redisCaFile)} cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      );
    }
  }
  const sentinel = readSentinel(env, r);
  const cluster = readCluster(env, r);
  const headersTimeoutMs = read("GATEWAY_HEADERS_TIMEOUT_MS");
  const receiveTimeoutMs = read("GATEWAY_RECEIVE_TIMEOUT_MS");
  // Node refuses a request timeout below the headers timeout: the head is part of the request.
  r.check(
    "GATEWAY_RECEIVE_TIMEOUT_MS",
    String(receiveTimeoutMs),
    receiveTimeoutMs >= headersTimeoutMs,
    "must not be below GATEWAY_HEADERS_TIMEOUT_MS",
  );
  const metricsPort = read("GATEWAY_METRICS_PORT");
  const recordHoldMs = read("GATEWAY_CORRELATION_HOLD_MS");
  const commandTimeoutMs = read("REDIS_COMMAND_TIMEOUT_MS");
  // A held record is written within 1.5 holds; another instance a reply reaches first looks it up until
  // REDIS_COMMAND_TIMEOUT_MS (lookAgainWaits): the write must land well within that.
  r.check(
    "GATEWAY_CORRELATION_HOLD_MS",
    String(recordHoldMs),
    recordHoldMs * 2 <= commandTimeoutMs,
    "must be at most half of REDIS_COMMAND_TIMEOUT_MS",
  );

  const config: Config = {
    http: {
      host: read("GATEWAY_HOST"),
      port: read("GATEWAY_PORT"),
      maxBodyBytes: read("GATEWAY_MAX_BODY_BYTES"),
      ...(hostSuffix !== undefined ? { deviceHostSuffix: hostSuffix.toLowerCase() } : {}),
      ...(metricsPort !== undefined ? { metricsPort } : {}),
      headersTimeoutMs,
      receiveTimeoutMs,
      maxHeaders: read("GATEWAY_MAX_HEADERS"),
      lingerMs: read("GATEWAY_LINGER_MS"),
      lingerIdleMs: read("GATEWAY_LINGER_IDLE_MS"),
    },
    redis: {
      url: read("REDIS_URL"),
      keyPrefix: read("REDIS_KEY_PREFIX"),
      commandTimeoutMs,
      waitReplicas: { replicas: read("REDIS_WAIT_REPLICAS"), timeoutMs: read("REDIS_WAIT_TIMEOUT_MS") },
      ...(redisUsername !== undefined ? { username: redisUsername } : {}),
      ...(redisPassword !== undefined ? { password: redisPassword } : {}),
      ...(redisCa !== undefined ? { tlsCa: redisCa } : {}),
      ...(sentinel !== undefined ? { sentinel } : {}),
      ...(cluster !== undefined ? { cluster } : {}),
    },
    xmpp: {
      service: read("XMPP_COMPONENT_SERVICE"),
      domain,
      secret: read("XMPP_COMPONENT_SECRET"),
    },
    devices: {
      jidTemplate,
      defaultTransport: read("DEFAULT_TRANSPORT"),
      maxInFlight: read("GATEWAY_DEVICE_MAX_IN_FLIGHT"),
      queueMax: read("GATEWAY_DEVICE_QUEUE_MAX"),
      slotReuseMs: read("GATEWAY_DEVICE_SLOT_REUSE_MS"),
      registryCacheMs: read("GATEWAY_REGISTRY_CACHE_MS"),
      ...(devicesFile !== undefined ? { file: devicesFile } : {}),
    },
    limits: {
      maxInFlight: read("GATEWAY_MAX_IN_FLIGHT"),
      // The window and burst are read only with the limit on: set beside a limit of 0, they change nothing.
      ...(clientRate > 0 && clientKeyMode
        ? {
            clientRate: {
              ratePerS: clientRate / read("GATEWAY_CLIENT_RATE_WINDOW_S"),
              burst: read("GATEWAY_CLIENT_RATE_BURST", clientRate),
              key: clientKeyMode,
            },
          }
        : {}),
      maxBufferedBytes: read("GATEWAY_MAX_BUFFERED_BYTES"),
    },
    admin: adminToken !== undefined ? { token: adminToken } : {},
    waves: { checkMs: read("GATEWAY_WAVE_CHECK_MS") },
    exchange: {
      timeoutMs: read("GATEWAY_REQUEST_TIMEOUT_MS"),
      maxReplyBytes: read("GATEWAY_MAX_REPLY_BYTES"),
      chunkThresholdBytes: read("GATEWAY_CHUNK_THRESHOLD_BYTES"),
      chunkSizeBytes: read("GATEWAY_CHUNK_SIZE_BYTES"),
      offlineRetryAfterS: read("GATEWAY_OFFLINE_RETRY_AFTER_S"),
      recordHoldMs,
    },
    presence: {
      onlineTtlMs: read("GATEWAY_PRESENCE_TTL_S") * 1000,
      offlineTtlMs: read("GATEWAY_OFFLINE_TTL_S") * 1000,
    },
    requests: {
      resultTtlMs: read("GATEWAY_RESULT_TTL_S") * 1000,
      queueTtlMs: read("GATEWAY_QUEUE_TTL_S") * 1000,
      queue: {
        maxPerDevice: read("GATEWAY_QUEUE_MAX_PER_DEVICE"),
        maxBytesPerDevice: read("GATEWAY_QUEUE_MAX_BYTES_PER_DEVICE"),
        maxTotal: read("GATEWAY_QUEUE_MAX_TOTAL"),
        maxTotalBytes: read("GATEWAY_QUEUE_MAX_TOTAL_BYTES"),
      },
      idempotencyTtlMs: read("GATEWAY_IDEMPOTENCY_TTL_S") * 1000,
      busyRetryAfterS: read("GATEWAY_BUSY_RETRY_AFTER_S"),
    },
    drainGraceMs: read("GATEWAY_DRAIN_GRACE_MS"),
    drainTimeoutMs: read("GATEWAY_DRAIN_TIMEOUT_MS"),
    instanceId: read("GATEWAY_INSTANCE_ID", `${hostname()}-${process.pid}`),
    logLevel: read("LOG_LEVEL"),
    tracing: readTracingConfig(r, GATEWAY_SETTINGS, GATEWAY_SERVICE_NAME),
  };
  // A budget smaller than one request or reply would refuse the largest ones on an idle instance.
  const largest = Math.max(config.http.maxBodyBytes, config.exchange.maxReplyBytes);
  r.check(
    "GATEWAY_MAX_BUFFERED_BYTES",
    String(config.limits.maxBufferedBytes),
    config.limits.maxBufferedBytes >= largest,
    "must not be below GATEWAY_MAX_BODY_BYTES or GATEWAY_MAX_REPLY_BYTES",
  );
  if (sentinel !== undefined) {
    if (redisCaFile !== undefined && !sentinel.tls) {
      r.problems.push("REDIS_TLS_CA_FILE is set but REDIS_SENTINEL_TLS is not on: the connections would not use TLS");
    }
  } else if (cluster !== undefined) {
    if (redisCaFile !== undefined && !cluster.tls) {
      r.problems.push("REDIS_TLS_CA_FILE is set but REDIS_CLUSTER_TLS is not on: the connections would not use TLS");
    }
    // A Cluster hashes only what is between the first `{` and the next `}` of a key when there is one (the
    // hash tag): a brace in the prefix would become every key's tag, putting all of them in one slot, or
    // would cut the tags the gateway's own keys carry.
    if (/[{}]/.test(config.redis.keyPrefix)) {
      r.problems.push(
        `REDIS_KEY_PREFIX=${JSON.stringify(config.redis.keyPrefix)} has { or }, which in Cluster mode would capture the keys' hash tags`,
      );
    }
  } else if (redisCaFile !== undefined && !config.redis.url.startsWith("rediss:")) {
    r.problems.push("REDIS_TLS_CA_FILE is set but REDIS_URL is not rediss://: the connection would not use TLS");
  }
  r.done();
  return config;
}

/**
 * Sentinel mode (REDIS_SENTINELS and REDIS_SENTINEL_NAME), or undefined for one node at REDIS_URL. Both
 * REDIS_URL and REDIS_SENTINELS set is refused: which one the gateway would follow is not obvious, and a
 * deployment that meant Sentinel but kept an old REDIS_URL would otherwise write to a node without failover.
 * The Sentinel settings without REDIS_SENTINELS are refused too: they would do nothing.
 */
function readSentinel(env: Env, r: EnvReader): RedisOptions["sentinel"] {
  const list = r.read("REDIS_SENTINELS", GATEWAY_SETTINGS.REDIS_SENTINELS);
  const name = r.read("REDIS_SENTINEL_NAME", GATEWAY_SETTINGS.REDIS_SENTINEL_NAME);
  const password = r.read("REDIS_SENTINEL_PASSWORD", GATEWAY_SETTINGS.REDIS_SENTINEL_PASSWORD);
  const tls = r.read("REDIS_SENTINEL_TLS", GATEWAY_SETTINGS.REDIS_SENTINEL_TLS);
  if (list === undefined) {
    const stray = [
      ["REDIS_SENTINEL_NAME", name],
      ["REDIS_SENTINEL_PASSWORD", password],
      ["REDIS_SENTINEL_TLS", tls === "on" ? tls : undefined],
    ].filter(([, v]) => v !== undefined);
    for (const [variable] of stray) r.problems.push(`${variable} is set but REDIS_SENTINELS is not: it would do nothing`);
    return undefined;
  }
  if ((env.REDIS_URL ?? "").trim() !== "") {
    r.problems.push("REDIS_URL and REDIS_SENTINELS are both set: keep REDIS_URL for one node or REDIS_SENTINELS for Sentinel mode");
  }
  if (name === undefined) r.problems.push("REDIS_SENTINEL_NAME is required with REDIS_SENTINELS (the primary's name in Sentinel)");
  const sentinels = readHostPorts(r, "REDIS_SENTINELS", list);
  if (sentinels === undefined) return undefined;
  return {
    name: name ?? "",
    sentinels,
    tls: tls === "on",
    ...(password !== undefined ? { password } : {}),
  };
}

/**
 * Cluster mode (REDIS_CLUSTER_NODES: seed nodes, from which ioredis learns the others with CLUSTER SLOTS), or
 * undefined. As for Sentinel, REDIS_URL or REDIS_SENTINELS beside it is refused (which one would be followed
 * is not obvious), and REDIS_CLUSTER_TLS without it would do nothing.
 */
function readCluster(env: Env, r: EnvReader): RedisOptions["cluster"] {
  const list = r.read("REDIS_CLUSTER_NODES", GATEWAY_SETTINGS.REDIS_CLUSTER_NODES);
  const tls = r.read("REDIS_CLUSTER_TLS", GATEWAY_SETTINGS.REDIS_CLUSTER_TLS);
  if (list === undefined) {
    if (tls === "on") r.problems.push("REDIS_CLUSTER_TLS is set but REDIS_CLUSTER_NODES is not: it would do nothing");
    return undefined;
  }
  if ((env.REDIS_URL ?? "").trim() !== "") {
    r.problems.push("REDIS_URL and REDIS_CLUSTER_NODES are both set: keep REDIS_URL for one node or REDIS_CLUSTER_NODES for Cluster mode");
  }
  if ((env.REDIS_SENTINELS ?? "").trim() !== "") {
    r.problems.push("REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set: a deployment is either Sentinel or Cluster");
  }
  const nodes = readHostPorts(r, "REDIS_CLUSTER_NODES", list);
  return nodes === undefined ? undefined : { nodes, tls: tls === "on" };
}

/** A `host:port,…` list setting, or undefined after a problem naming the first entry that is not one. */
function readHostPorts(r: EnvReader, variable: string, list: string): HostPort[] | undefined {
  const parsed = parseHostPorts(list);
  if ("bad" in parsed) {
    r.problems.push(`${variable} has ${JSON.stringify(parsed.bad)}, which is not host:port (port 1 to 65535)`);
    return undefined;
  }
  return parsed.addresses;
}
