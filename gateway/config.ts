import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_THRESHOLD, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from "../lib/xep0332/constants.js";
import { EnvReader, LOG_LEVELS, type Env, type LogLevel } from "../lib/env.js";
import { isHostName } from "../lib/legacy-address.js";
import { parseClientKeyMode, type ClientKeyMode } from "./limits/client-key.js";
import type { RedisOptions } from "./redis/client.js";

/** Everything the gateway is configured with; every field comes from one environment variable (README table). */
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
  /** REDIS_URL, REDIS_KEY_PREFIX, REDIS_COMMAND_TIMEOUT_MS, REDIS_USERNAME, REDIS_PASSWORD(_FILE), REDIS_TLS_CA_FILE (read). */
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
    /** JSON or YAML list of registry entries imported at start. */
    file?: string;
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
  exchange: {
    timeoutMs: number;
    maxReplyBytes: number;
    chunkThresholdBytes: number;
    chunkSizeBytes: number;
    offlineRetryAfterS: number;
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
}

export function loadConfig(env: Env): Config {
  const r = new EnvReader(env);
  const jidTemplate = r.string("DEVICE_JID_TEMPLATE", "{id}@localhost/agent");
  r.check("DEVICE_JID_TEMPLATE", jidTemplate, /^[^@/]*\{id\}[^@/]*@[^@/]+\/[^/]+$/.test(jidTemplate),
    "must be a full JID with {id} in the localpart, e.g. {id}@devices.example.com/agent");
  const domain = r.string("XMPP_COMPONENT_DOMAIN", "gateway.localhost");
  r.check("XMPP_COMPONENT_DOMAIN", domain, /^[A-Za-z0-9.-]+$/.test(domain), "must be a domain name");
  const adminToken = r.secret("GATEWAY_ADMIN_TOKEN");
  if (adminToken !== undefined && !/^[\x21-\x7e]{16,1024}$/.test(adminToken)) {
    // The value is a secret: the line gives its length only.
    r.problems.push(`GATEWAY_ADMIN_TOKEN (${adminToken.length} characters) must be 16-1024 visible ASCII characters`);
  }
  const devicesFile = r.optional("GATEWAY_DEVICES_FILE");
  const hostSuffix = r.optional("GATEWAY_DEVICE_HOST_SUFFIX");
  if (hostSuffix !== undefined) {
    r.check("GATEWAY_DEVICE_HOST_SUFFIX", hostSuffix, isHostName(hostSuffix),
      "must be a DNS name without a leading dot or a port, e.g. devices.example.com (device dev-17 is then dev-17.devices.example.com)");
  }

  const clientRate = r.int("GATEWAY_CLIENT_RATE_LIMIT", 0, 0, 1_000_000);
  const clientKeyValue = r.string("GATEWAY_CLIENT_KEY", "ip");
  const clientKeyMode = parseClientKeyMode(clientKeyValue);
  r.check("GATEWAY_CLIENT_KEY", clientKeyValue, clientKeyMode !== undefined, "must be ip, x-forwarded-for or header:<field-name>");

  const redisUsername = r.optional("REDIS_USERNAME");
  const redisPassword = r.secret("REDIS_PASSWORD");
  const redisCaFile = r.optional("REDIS_TLS_CA_FILE");
  let redisCa: string | undefined;
  if (redisCaFile !== undefined) {
    // Read now, so that a wrong path stops the start instead of failing every reconnect.
    try {
      redisCa = readFileSync(redisCaFile, "utf8");
    } catch (err) {
      r.problems.push(`REDIS_TLS_CA_FILE=${JSON.stringify(redisCaFile)} cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }
  const headersTimeoutMs = r.int("GATEWAY_HEADERS_TIMEOUT_MS", 20_000, 100);
  const receiveTimeoutMs = r.int("GATEWAY_RECEIVE_TIMEOUT_MS", 300_000, 100);
  // Node refuses a request timeout below the headers timeout: the head is part of the request.
  r.check("GATEWAY_RECEIVE_TIMEOUT_MS", String(receiveTimeoutMs), receiveTimeoutMs >= headersTimeoutMs, "must not be below GATEWAY_HEADERS_TIMEOUT_MS");

  const config: Config = {
    http: {
      host: r.string("GATEWAY_HOST", "0.0.0.0"),
      port: r.int("GATEWAY_PORT", 8080, 0, 65535),
      maxBodyBytes: r.int("GATEWAY_MAX_BODY_BYTES", 10 * 1024 * 1024, 0),
      ...(hostSuffix !== undefined ? { deviceHostSuffix: hostSuffix.toLowerCase() } : {}),
      ...(r.optional("GATEWAY_METRICS_PORT") !== undefined ? { metricsPort: r.int("GATEWAY_METRICS_PORT", 0, 0, 65535) } : {}),
      headersTimeoutMs,
      receiveTimeoutMs,
      maxHeaders: r.int("GATEWAY_MAX_HEADERS", 100, 1, 10_000),
      lingerMs: r.int("GATEWAY_LINGER_MS", 30_000, 0, 600_000),
      lingerIdleMs: r.int("GATEWAY_LINGER_IDLE_MS", 5000, 1, 600_000),
    },
    redis: {
      url: r.url("REDIS_URL", "redis://127.0.0.1:6379", ["redis:", "rediss:"]),
      keyPrefix: r.string("REDIS_KEY_PREFIX", "gw:"),
      commandTimeoutMs: r.int("REDIS_COMMAND_TIMEOUT_MS", 2000, 50),
      ...(redisUsername !== undefined ? { username: redisUsername } : {}),
      ...(redisPassword !== undefined ? { password: redisPassword } : {}),
      ...(redisCa !== undefined ? { tlsCa: redisCa } : {}),
    },
    xmpp: {
      service: r.url("XMPP_COMPONENT_SERVICE", "xmpp://127.0.0.1:5347", ["xmpp:"]),
      domain,
      secret: r.requiredSecret("XMPP_COMPONENT_SECRET"),
    },
    devices: {
      jidTemplate,
      defaultTransport: r.oneOf("DEFAULT_TRANSPORT", "xmpp", ["xmpp", "none"] as const),
      maxInFlight: r.int("GATEWAY_DEVICE_MAX_IN_FLIGHT", 16, 1, 10_000),
      queueMax: r.int("GATEWAY_DEVICE_QUEUE_MAX", 256, 0, 100_000),
      ...(devicesFile !== undefined ? { file: devicesFile } : {}),
    },
    limits: {
      maxInFlight: r.int("GATEWAY_MAX_IN_FLIGHT", 10_000, 1),
      ...(clientRate > 0 && clientKeyMode
        ? {
          clientRate: {
            ratePerS: clientRate / r.int("GATEWAY_CLIENT_RATE_WINDOW_S", 1, 1, 86_400),
            burst: r.int("GATEWAY_CLIENT_RATE_BURST", clientRate, 1),
            key: clientKeyMode,
          },
        }
        : {}),
      maxBufferedBytes: r.int("GATEWAY_MAX_BUFFERED_BYTES", 128 * 1024 * 1024, 1),
    },
    admin: adminToken !== undefined ? { token: adminToken } : {},
    exchange: {
      timeoutMs: r.int("GATEWAY_REQUEST_TIMEOUT_MS", 30_000, 1),
      maxReplyBytes: r.int("GATEWAY_MAX_REPLY_BYTES", 10 * 1024 * 1024, 0),
      chunkThresholdBytes: r.int("GATEWAY_CHUNK_THRESHOLD_BYTES", DEFAULT_CHUNK_THRESHOLD, 0, 128 * 1024),
      chunkSizeBytes: r.int("GATEWAY_CHUNK_SIZE_BYTES", DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
      offlineRetryAfterS: r.int("GATEWAY_OFFLINE_RETRY_AFTER_S", 30, 0),
    },
    presence: {
      onlineTtlMs: r.int("GATEWAY_PRESENCE_TTL_S", 180, 1) * 1000,
      offlineTtlMs: r.int("GATEWAY_OFFLINE_TTL_S", 86_400, 1) * 1000,
    },
    requests: {
      resultTtlMs: r.int("GATEWAY_RESULT_TTL_S", 3600, 1) * 1000,
      queueTtlMs: r.int("GATEWAY_QUEUE_TTL_S", 3600, 1) * 1000,
      queue: {
        maxPerDevice: r.int("GATEWAY_QUEUE_MAX_PER_DEVICE", 100, 1),
        maxBytesPerDevice: r.int("GATEWAY_QUEUE_MAX_BYTES_PER_DEVICE", 32 * 1024 * 1024, 1),
        maxTotal: r.int("GATEWAY_QUEUE_MAX_TOTAL", 100_000, 1),
        maxTotalBytes: r.int("GATEWAY_QUEUE_MAX_TOTAL_BYTES", 512 * 1024 * 1024, 1),
      },
      idempotencyTtlMs: r.int("GATEWAY_IDEMPOTENCY_TTL_S", 86_400, 1) * 1000,
      busyRetryAfterS: r.int("GATEWAY_BUSY_RETRY_AFTER_S", 1, 0),
    },
    drainGraceMs: r.int("GATEWAY_DRAIN_GRACE_MS", 3000, 0),
    drainTimeoutMs: r.int("GATEWAY_DRAIN_TIMEOUT_MS", 25_000, 0),
    instanceId: r.string("GATEWAY_INSTANCE_ID", `${hostname()}-${process.pid}`),
    logLevel: r.oneOf("LOG_LEVEL", "info", LOG_LEVELS),
  };
  // A budget smaller than one request or reply would refuse the largest ones on an idle instance.
  const largest = Math.max(config.http.maxBodyBytes, config.exchange.maxReplyBytes);
  r.check("GATEWAY_MAX_BUFFERED_BYTES", String(config.limits.maxBufferedBytes), config.limits.maxBufferedBytes >= largest,
    "must not be below GATEWAY_MAX_BODY_BYTES or GATEWAY_MAX_REPLY_BYTES");
  if (redisCaFile !== undefined && !config.redis.url.startsWith("rediss:")) {
    r.problems.push("REDIS_TLS_CA_FILE is set but REDIS_URL is not rediss://: the connection would not use TLS");
  }
  r.done();
  return config;
}
