import { DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_THRESHOLD, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from "../lib/xep0332/constants.js";
import { LOG_LEVELS, type Setting } from "../lib/env.js";
import { isHostName } from "../lib/legacy-address.js";
import { parseClientKeyMode } from "./limits/client-key.js";
import { RECORD_HOLD_MS } from "./correlation/store.js";
import { tracingSettings } from "../lib/tracing/settings.js";

/** service.name when OTEL_SERVICE_NAME is not set. */
export const GATEWAY_SERVICE_NAME = "xmpp-http-gateway";

/**
 * Every environment variable of the gateway, once: kind, default, range or rule, one line of doc (README,
 * "Configuration (gateway)", whose table test/unit/readme-config-table.test.ts keeps equal to this one).
 * loadConfig (config.ts) reads them from here and builds Config; relations between settings (a receive
 * timeout not below the headers timeout, a buffer budget not below one body) are checked there. Modules
 * that need a default without a Config (a server built in a test) take it from here too.
 * Times ending in _S are seconds, _MS milliseconds; sizes ending in _BYTES are bytes.
 */
export const GATEWAY_SETTINGS = {
  GATEWAY_PORT: { kind: "int", default: 8080, min: 0, max: 65535, doc: "HTTP listener port (0: any free port)" },
  GATEWAY_HOST: { kind: "string", default: "0.0.0.0", doc: "HTTP listener address" },
  GATEWAY_METRICS_PORT: {
    kind: "optionalInt",
    min: 0,
    max: 65535,
    unset: "`/metrics` on `GATEWAY_PORT`",
    doc: "serve /metrics on this port only (same host)",
  },
  REDIS_URL: {
    kind: "url",
    default: "redis://127.0.0.1:6379",
    protocols: ["redis:", "rediss:"],
    doc: "correlation store; its password is never echoed",
  },
  REDIS_USERNAME: { kind: "optional", unset: "", doc: "Redis 6+ ACL user; overrides one in REDIS_URL" },
  REDIS_PASSWORD: {
    kind: "secret",
    required: false,
    unset: "",
    doc: "Redis password (or REDIS_PASSWORD_FILE); overrides one in REDIS_URL",
  },
  REDIS_TLS_CA_FILE: {
    kind: "optional",
    unset: "Node's bundled roots",
    doc: "PEM file of the CAs trusted for rediss:// (or REDIS_SENTINEL_TLS=on, REDIS_CLUSTER_TLS=on), read at start",
  },
  REDIS_SENTINELS: {
    kind: "optional",
    unset: "one node at REDIS_URL",
    doc: "host:port,host:port,… of Redis Sentinels: Sentinel mode, with REDIS_URL unset",
  },
  REDIS_SENTINEL_NAME: { kind: "optional", unset: "", doc: "the primary's name in Sentinel (required with REDIS_SENTINELS)" },
  REDIS_SENTINEL_PASSWORD: {
    kind: "secret",
    required: false,
    unset: "",
    doc: "the Sentinels' own password (or REDIS_SENTINEL_PASSWORD_FILE); REDIS_PASSWORD is the data nodes'",
  },
  REDIS_SENTINEL_TLS: {
    kind: "oneOf",
    default: "off",
    allowed: ["off", "on"],
    doc: "in Sentinel mode, TLS to the Sentinels and the data nodes, as rediss:// does for one node",
  },
  REDIS_CLUSTER_NODES: {
    kind: "optional",
    unset: "one node at REDIS_URL",
    doc: "host:port,host:port,… of some Redis Cluster nodes (seeds; the rest is discovered): Cluster mode, with REDIS_URL unset",
  },
  REDIS_CLUSTER_TLS: {
    kind: "oneOf",
    default: "off",
    allowed: ["off", "on"],
    doc: "in Cluster mode, TLS to every node, as rediss:// does for one node",
  },
  REDIS_KEY_PREFIX: { kind: "string", default: "gw:", doc: "prefix of every key the gateway writes (no `{` or `}` in Cluster mode)" },
  REDIS_COMMAND_TIMEOUT_MS: { kind: "int", default: 2000, min: 50, doc: "a Redis command without an answer by then fails (503)" },
  REDIS_WAIT_REPLICAS: {
    kind: "int",
    default: 0,
    min: 0,
    doc: "replicas that must have an Idempotency-Key's claim and an accepted asynchronous request before the gateway goes on (WAIT; 0: off)",
  },
  REDIS_WAIT_TIMEOUT_MS: {
    kind: "int",
    default: 250,
    min: 1,
    doc: "how long such a write waits for its replicas; short of them, the request fails with 503 and the device is not reached",
  },
  XMPP_COMPONENT_SERVICE: {
    kind: "url",
    default: "xmpp://127.0.0.1:5347",
    protocols: ["xmpp:"],
    doc: "the XMPP server's component port (XEP-0114)",
  },
  XMPP_COMPONENT_DOMAIN: {
    kind: "string",
    default: "gateway.localhost",
    check: { ok: (v) => /^[A-Za-z0-9.-]+$/.test(v), rule: "must be a domain name" },
    doc: "the component's JID",
  },
  XMPP_COMPONENT_SECRET: { kind: "secret", required: true, doc: "XEP-0114 shared secret (or XMPP_COMPONENT_SECRET_FILE)" },
  DEVICE_JID_TEMPLATE: {
    kind: "string",
    default: "{id}@localhost/agent",
    check: {
      ok: (v) => /^[^@/]*\{id\}[^@/]*@[^@/]+\/[^/]+$/.test(v),
      rule: "must be a full JID with {id} in the localpart, e.g. {id}@devices.example.com/agent",
    },
    doc: "device JID from device id",
  },
  DEFAULT_TRANSPORT: {
    kind: "oneOf",
    default: "xmpp",
    allowed: ["xmpp", "none"],
    doc: "a device without a registry entry: xmpp at DEVICE_JID_TEMPLATE, or none (404)",
  },
  GATEWAY_DEVICE_HOST_SUFFIX: {
    kind: "optional",
    unset: "no Host addressing",
    check: {
      ok: isHostName,
      rule: "must be a DNS name without a leading dot or a port, e.g. devices.example.com (device dev-17 is then dev-17.devices.example.com)",
    },
    doc: "`Host: {id}.{suffix}` addresses device {id}",
  },
  GATEWAY_DEVICE_MAX_IN_FLIGHT: {
    kind: "int",
    default: 16,
    min: 1,
    max: 10_000,
    doc: "requests in flight per device, for registry entries without maxInFlight",
  },
  GATEWAY_DEVICE_QUEUE_MAX: {
    kind: "int",
    default: 256,
    min: 0,
    max: 100_000,
    doc: "requests of one device that wait on this instance for a slot; beyond, 429",
  },
  GATEWAY_DEVICE_SLOT_REUSE_MS: {
    kind: "int",
    default: 1000,
    min: 0,
    max: 60_000,
    doc: "how long a device's in-flight slot taken (or last renewed) in Redis may serve this instance's next requests of that device; 0: every request takes its own",
  },
  GATEWAY_CORRELATION_HOLD_MS: {
    kind: "int",
    default: RECORD_HOLD_MS,
    min: 0,
    max: 1000,
    doc: "how long an exchange's correlation record is held on its instance before it is written to Redis (an exchange that ends by then is never written); 0: written at once",
  },
  GATEWAY_HEADERS_TIMEOUT_MS: {
    kind: "int",
    default: 20_000,
    min: 100,
    doc: "a request's head must arrive within this from its first byte (408)",
  },
  GATEWAY_RECEIVE_TIMEOUT_MS: {
    kind: "int",
    default: 300_000,
    min: 100,
    doc: "the whole request must arrive within this from its first byte (408)",
  },
  GATEWAY_MAX_HEADERS: { kind: "int", default: 100, min: 1, max: 10_000, doc: "header fields per request; more is 431" },
  GATEWAY_MAX_IN_FLIGHT: {
    kind: "int",
    default: 10_000,
    min: 1,
    doc: "device requests one instance holds at once; beyond, 503 GW_OVERLOADED",
  },
  GATEWAY_MAX_BUFFERED_BYTES: {
    kind: "int",
    default: 128 * 1024 * 1024,
    min: 1,
    doc: "request and reply body bytes one instance holds at once; beyond, 503",
  },
  GATEWAY_CLIENT_RATE_LIMIT: {
    kind: "int",
    default: 0,
    min: 0,
    max: 1_000_000,
    doc: "requests per client per window, shared through Redis; 0: off",
  },
  GATEWAY_CLIENT_RATE_WINDOW_S: { kind: "int", default: 1, min: 1, max: 86_400, doc: "the window of GATEWAY_CLIENT_RATE_LIMIT" },
  GATEWAY_CLIENT_RATE_BURST: {
    kind: "derivedInt",
    from: "GATEWAY_CLIENT_RATE_LIMIT",
    min: 1,
    doc: "requests a client may send at once after a quiet spell",
  },
  GATEWAY_CLIENT_KEY: {
    kind: "string",
    default: "ip",
    check: { ok: (v) => parseClientKeyMode(v) !== undefined, rule: "must be ip, x-forwarded-for or header:<field-name>" },
    doc: "who a client is for the rate limit: ip, x-forwarded-for or header:<name>",
  },
  GATEWAY_ADMIN_TOKEN: {
    kind: "secret",
    required: false,
    unset: "no admin API",
    check: { ok: (v) => /^[\x21-\x7e]{16,1024}$/.test(v), rule: "must be 16-1024 visible ASCII characters" },
    doc: "bearer token of the admin API (or GATEWAY_ADMIN_TOKEN_FILE)",
  },
  GATEWAY_DEVICES_FILE: { kind: "optional", unset: "", doc: "JSON or YAML list of registry entries, imported at every start" },
  GATEWAY_REGISTRY_CACHE_MS: {
    kind: "int",
    default: 5000,
    min: 0,
    max: 600_000,
    doc: "a registry entry an instance keeps in memory is read again once this old, even if no change notice came; 0: read on every request",
  },
  GATEWAY_WAVE_CHECK_MS: {
    kind: "int",
    default: 1000,
    min: 10,
    max: 60_000,
    doc: "how often each instance adds its counts of migration-wave requests in Redis and checks the waves being watched",
  },
  GATEWAY_REQUEST_TIMEOUT_MS: { kind: "int", default: 30_000, min: 1, doc: "deadline of one device exchange" },
  GATEWAY_MAX_BODY_BYTES: { kind: "int", default: 10 * 1024 * 1024, min: 0, doc: "request body limit (413)" },
  GATEWAY_LINGER_MS: {
    kind: "int",
    default: 30_000,
    min: 0,
    max: 600_000,
    doc: "how long a connection answered before its body was in reads the rest; 0: off",
  },
  GATEWAY_LINGER_IDLE_MS: {
    kind: "int",
    default: 5000,
    min: 1,
    max: 600_000,
    doc: "a lingering connection is closed once nothing came in for this long",
  },
  GATEWAY_MAX_REPLY_BYTES: { kind: "int", default: 10 * 1024 * 1024, min: 0, doc: "device reply body limit (502)" },
  GATEWAY_CHUNK_THRESHOLD_BYTES: {
    kind: "int",
    default: DEFAULT_CHUNK_THRESHOLD,
    min: 0,
    max: 128 * 1024,
    doc: "bodies above this go as XEP-0332 chunks",
  },
  GATEWAY_CHUNK_SIZE_BYTES: {
    kind: "int",
    default: DEFAULT_CHUNK_SIZE,
    min: MIN_CHUNK_SIZE,
    max: MAX_CHUNK_SIZE,
    doc: "raw bytes per chunk (XEP-0332's range)",
  },
  GATEWAY_OFFLINE_RETRY_AFTER_S: { kind: "int", default: 30, min: 0, doc: "Retry-After on 503 GW_DEVICE_OFFLINE" },
  GATEWAY_PRESENCE_TTL_S: { kind: "int", default: 180, min: 1, doc: "a device counts as online this long after its last presence" },
  GATEWAY_OFFLINE_TTL_S: { kind: "int", default: 86_400, min: 1, doc: "a device that signed off shows as offline this long" },
  GATEWAY_RESULT_TTL_S: { kind: "int", default: 3600, min: 1, doc: "how long an asynchronous result stays readable" },
  GATEWAY_QUEUE_TTL_S: { kind: "int", default: 3600, min: 1, doc: "how long an asynchronous request waits for an offline device" },
  GATEWAY_QUEUE_MAX_PER_DEVICE: { kind: "int", default: 100, min: 1, doc: "asynchronous requests queued per offline device" },
  GATEWAY_QUEUE_MAX_BYTES_PER_DEVICE: {
    kind: "int",
    default: 32 * 1024 * 1024,
    min: 1,
    doc: "bytes queued per device (entries as stored)",
  },
  GATEWAY_QUEUE_MAX_TOTAL: { kind: "int", default: 100_000, min: 1, doc: "asynchronous requests queued in all" },
  GATEWAY_QUEUE_MAX_TOTAL_BYTES: { kind: "int", default: 512 * 1024 * 1024, min: 1, doc: "bytes queued in all" },
  GATEWAY_IDEMPOTENCY_TTL_S: { kind: "int", default: 86_400, min: 1, doc: "how long an Idempotency-Key is remembered" },
  GATEWAY_BUSY_RETRY_AFTER_S: { kind: "int", default: 1, min: 0, doc: "Retry-After on 429 GW_DEVICE_BUSY" },
  GATEWAY_DRAIN_GRACE_MS: {
    kind: "int",
    default: 3000,
    min: 0,
    doc: "on SIGTERM, readiness fails but requests are still served this long",
  },
  GATEWAY_DRAIN_TIMEOUT_MS: { kind: "int", default: 25_000, min: 0, doc: "then, how long requests in flight may still finish" },
  GATEWAY_INSTANCE_ID: { kind: "derivedString", shown: "`hostname-pid`", doc: "owner name in correlation entries, instance in logs" },
  LOG_LEVEL: { kind: "oneOf", default: "info", allowed: LOG_LEVELS, doc: "log level" },
  // OpenTelemetry tracing (README, "Tracing"): the standard variables, off unless they ask for it.
  ...tracingSettings(GATEWAY_SERVICE_NAME),
} as const satisfies Record<string, Setting>;

export type GatewaySettingName = keyof typeof GATEWAY_SETTINGS;

/**
 * Retry-After, in seconds, on 503 GW_OVERLOADED (GATEWAY_MAX_IN_FLIGHT or GATEWAY_MAX_BUFFERED_BYTES
 * reached). A constant, not a setting: the instance has room again as soon as any request ends, so the
 * shortest whole second (RFC 9110 §10.2.3) is right for every deployment, and README promises `Retry-After: 1`.
 */
export const OVERLOAD_RETRY_AFTER_S = 1;

/**
 * Chunks of one XEP-0332 stream that may wait (parked in Redis) for the instance that owns the exchange to
 * claim them (correlation/stream-routes.ts). A constant, not a setting: the bound that matters to an
 * operator is bytes (2 × GATEWAY_MAX_REPLY_BYTES + 64 KiB per exchange, derived from a setting); this count
 * only caps the list length for a stream of tiny chunks (4096 chunks of XEP-0332's smallest size, 256
 * bytes, hold 1 MiB).
 */
export const MAX_PARKED_CHUNKS = 4096;

/**
 * Registry answers one instance keeps in memory at most (registry/cached-registry.ts), the oldest dropped
 * first. A constant, not a setting: GATEWAY_REGISTRY_CACHE_MS already bounds what is kept to the devices
 * requested within that time, and this only caps requests for random ids (each of which costs a Redis read
 * anyway): about 40 MB of entries with every field set (some 400 bytes each), 13 MB of absent ones.
 */
export const REGISTRY_CACHE_MAX_ENTRIES = 100_000;
