import { DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_THRESHOLD, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from "../../lib/xep0332/constants.js";
import { LOG_LEVELS, type Setting } from "../../lib/env.js";
import { normalizeLegacyAddress } from "../../lib/legacy-address.js";
import { tracingSettings } from "../../lib/tracing/settings.js";
import { TLS_MODES } from "./tls.js";

/** service.name when OTEL_SERVICE_NAME is not set. */
export const AGENT_SERVICE_NAME = "device-agent";

export const LEGACY_ADDRESS_RULE = "must be host:port (IPv4, [IPv6] or a host name; port 1-65535), e.g. 10.0.0.17:8080";

/**
 * Every environment variable of the device agent, once: kind, default, range or rule, one line of doc
 * (README, "Running the device agent next to a legacy device", whose table
 * test/unit/readme-config-table.test.ts keeps equal to this one). loadAgentConfig (config.ts) reads them from
 * here; relations between them (AGENT_TLS=off with xmpps:// or a CA file, AGENT_LEGACY_ADDRESS with a fleet
 * file) are checked there.
 */
export const AGENT_SETTINGS = {
  AGENT_SERVICE: {
    kind: "string",
    default: "xmpp://127.0.0.1:5222",
    doc: "XMPP server (c2s); or several, comma-separated, tried in turn; `xmpp-srv://domain` looks them up in DNS SRV",
  },
  AGENT_DOMAIN: { kind: "string", default: "localhost", doc: "the device's XMPP domain" },
  AGENT_USERNAME: { kind: "required", doc: "the device's account (without AGENT_FLEET_FILE)" },
  AGENT_PASSWORD: { kind: "required", doc: "the device's password (without AGENT_FLEET_FILE)" },
  AGENT_RESOURCE: { kind: "string", default: "agent", doc: "resource; the gateway addresses username@domain/resource" },
  AGENT_LOCAL_URL: {
    kind: "url",
    default: "http://127.0.0.1:80",
    protocols: ["http:", "https:"],
    doc: "the legacy device's HTTP server (without AGENT_FLEET_FILE)",
  },
  AGENT_GATEWAY_JID: { kind: "string", default: "gateway.localhost", doc: "the gateway's component JID: the only sender served" },
  AGENT_LOCAL_TIMEOUT_MS: { kind: "int", default: 25_000, min: 1, doc: "local call deadline (keep it below the gateway's)" },
  AGENT_MAX_BODY_BYTES: { kind: "int", default: 10 * 1024 * 1024, min: 0, doc: "largest request or reply body carried" },
  AGENT_CHUNK_THRESHOLD_BYTES: {
    kind: "int",
    default: DEFAULT_CHUNK_THRESHOLD,
    min: 0,
    max: 128 * 1024,
    doc: "bodies above this go as XEP-0332 chunks",
  },
  AGENT_CHUNK_SIZE_BYTES: {
    kind: "int",
    default: DEFAULT_CHUNK_SIZE,
    min: MIN_CHUNK_SIZE,
    max: MAX_CHUNK_SIZE,
    doc: "raw bytes per chunk (XEP-0332's range)",
  },
  AGENT_TLS: {
    kind: "optionalOneOf",
    allowed: TLS_MODES,
    unset: "required, or off for xmpp:// on loopback without a CA file (tls.ts, defaultTlsMode)",
    shown: "`required`",
    doc: "TLS on the XMPP connection: required (STARTTLS or XEP-0368) or off",
  },
  AGENT_TLS_CA_FILE: {
    kind: "optional",
    unset: "Node's bundled roots",
    doc: "PEM file of the CAs to trust instead of Node's, read at start",
  },
  AGENT_SASL_MECHANISM: { kind: "optionalOneOf", allowed: ["PLAIN", "SCRAM-SHA-1"], unset: "the server's first", doc: "SASL mechanism" },
  AGENT_PRESENCE_INTERVAL_S: { kind: "int", default: 60, min: 1, max: 86_400, doc: "presence is sent again this often" },
  AGENT_LEGACY_ADDRESS: {
    kind: "optional",
    unset: "",
    check: { ok: (v) => normalizeLegacyAddress(v) !== undefined, rule: LEGACY_ADDRESS_RULE },
    doc: "the host:port legacy clients used for this device, announced to the gateway",
  },
  AGENT_FLEET_FILE: { kind: "optional", unset: "", doc: "JSON array of device identities run by this one process" },
  LOG_LEVEL: { kind: "oneOf", default: "info", allowed: LOG_LEVELS, doc: "log level" },
  // OpenTelemetry tracing (README, "Tracing"): the standard variables, off unless they ask for it.
  ...tracingSettings(AGENT_SERVICE_NAME),
} as const satisfies Record<string, Setting>;

export type AgentSettingName = keyof typeof AGENT_SETTINGS;
