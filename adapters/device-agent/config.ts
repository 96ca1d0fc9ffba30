import { readFileSync } from "node:fs";
import { DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_THRESHOLD, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE } from "../../lib/xep0332/constants.js";
import { EnvReader, isUrlWith, LOG_LEVELS, redactUrl, type Env, type LogLevel } from "../../lib/env.js";
import { normalizeLegacyAddress } from "../../lib/legacy-address.js";
import type { AgentIdentity, AgentOptions } from "./agent.js";
import { readCaFile, TLS_MODES, type AgentTlsOptions, type TlsMode } from "./tls.js";

export interface AgentConfig {
  /** One entry per device identity this process runs. */
  agents: AgentOptions[];
  logLevel: LogLevel;
}

const LEGACY_ADDRESS_RULE = "must be host:port (IPv4, [IPv6] or a host name; port 1-65535), e.g. 10.0.0.17:8080";

/**
 * The agent's environment (README, "Device agent"). One identity from AGENT_USERNAME/AGENT_PASSWORD/
 * AGENT_LOCAL_URL (and AGENT_LEGACY_ADDRESS), or many from AGENT_FLEET_FILE (a JSON array of {username,
 * password, localUrl, resource?, legacyAddress?}) sharing the rest of the settings.
 */
export function loadAgentConfig(env: Env): AgentConfig {
  const r = new EnvReader(env);
  const service = r.url("AGENT_SERVICE", "xmpp://127.0.0.1:5222", ["xmpp:", "xmpps:"]);
  const domain = r.string("AGENT_DOMAIN", "localhost");
  const resource = r.string("AGENT_RESOURCE", "agent");
  const shared = {
    service,
    domain,
    gatewayJid: r.string("AGENT_GATEWAY_JID", "gateway.localhost"),
    localTimeoutMs: r.int("AGENT_LOCAL_TIMEOUT_MS", 25_000, 1),
    presenceIntervalMs: r.int("AGENT_PRESENCE_INTERVAL_S", 60, 1, 86_400) * 1000,
    maxBodyBytes: r.int("AGENT_MAX_BODY_BYTES", 10 * 1024 * 1024, 0),
    chunkThresholdBytes: r.int("AGENT_CHUNK_THRESHOLD_BYTES", DEFAULT_CHUNK_THRESHOLD, 0, 128 * 1024),
    chunkSizeBytes: r.int("AGENT_CHUNK_SIZE_BYTES", DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE),
    ...(r.optional("AGENT_SASL_MECHANISM") ? { saslMechanism: r.oneOf("AGENT_SASL_MECHANISM", "PLAIN", ["PLAIN", "SCRAM-SHA-1"]) } : {}),
    ...readTls(r, service),
  };
  const fleetFile = r.optional("AGENT_FLEET_FILE");
  const legacyAddressText = r.optional("AGENT_LEGACY_ADDRESS");
  const legacyAddress = legacyAddressText === undefined ? undefined : normalizeLegacyAddress(legacyAddressText);
  if (legacyAddressText !== undefined && legacyAddress === undefined) {
    r.problems.push(`AGENT_LEGACY_ADDRESS=${JSON.stringify(legacyAddressText)} ${LEGACY_ADDRESS_RULE}`);
  }
  let identities: AgentIdentity[] = [];
  if (fleetFile) {
    if (legacyAddressText !== undefined) {
      // One address for every device of a fleet would make them all claim it: the first one would win.
      r.problems.push('AGENT_LEGACY_ADDRESS is for a single identity: with AGENT_FLEET_FILE, give each entry its own "legacyAddress"');
    }
    identities = readFleet(fleetFile, resource, r.problems);
  } else {
    const localUrl = r.url("AGENT_LOCAL_URL", "http://127.0.0.1:80", ["http:", "https:"]);
    identities = [
      { username: r.required("AGENT_USERNAME"), password: r.required("AGENT_PASSWORD"), resource, localUrl, ...(legacyAddress !== undefined ? { legacyAddress } : {}) },
    ];
  }
  const logLevel = r.oneOf("LOG_LEVEL", "info", LOG_LEVELS);
  r.done();
  return { agents: identities.map((id) => ({ ...shared, ...id })), logLevel };
}

/**
 * AGENT_TLS and AGENT_TLS_CA_FILE; nothing when neither is set (the connection then applies
 * `defaultTlsMode`). The CA file is read once, here, so a bad one stops the start instead of every attempt.
 */
function readTls(r: EnvReader, service: string): { tls?: AgentTlsOptions } {
  const modeText = r.optional("AGENT_TLS");
  const caFile = r.optional("AGENT_TLS_CA_FILE");
  if (modeText === undefined && caFile === undefined) return {};
  const tls: AgentTlsOptions = {};
  if (modeText !== undefined) tls.mode = r.oneOf<TlsMode>("AGENT_TLS", "required", TLS_MODES);
  if (tls.mode === "off" && service.startsWith("xmpps:")) {
    r.problems.push(`AGENT_TLS=off cannot apply to AGENT_SERVICE=${JSON.stringify(redactUrl(service))}: xmpps:// is TLS from the first byte (XEP-0368); use xmpp:// for plain text`);
  }
  if (caFile !== undefined) {
    if (tls.mode === "off") r.problems.push("AGENT_TLS_CA_FILE is set but AGENT_TLS=off: nothing would check the server's certificate");
    try {
      tls.ca = readCaFile(caFile);
    } catch (err) {
      r.problems.push(`AGENT_TLS_CA_FILE=${JSON.stringify(caFile)} ${(err as Error).message}`);
    }
  }
  return { tls };
}

function readFleet(file: string, resource: string, problems: string[]): AgentIdentity[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    problems.push(`AGENT_FLEET_FILE=${JSON.stringify(file)} cannot be read as JSON: ${(err as Error).message}`);
    return [];
  }
  if (!Array.isArray(parsed) || parsed.length === 0) {
    problems.push(`AGENT_FLEET_FILE=${JSON.stringify(file)} must hold a non-empty JSON array`);
    return [];
  }
  const byAddress = new Map<string, number>();
  return parsed.map((raw: unknown, i) => {
    const entry = (typeof raw === "object" && raw !== null ? raw : {}) as Partial<AgentIdentity>;
    if (entry !== raw) problems.push(`AGENT_FLEET_FILE entry ${i} must be an object`);
    for (const field of ["username", "password", "localUrl"] as const) {
      if (entry === raw && (typeof entry[field] !== "string" || entry[field] === "")) problems.push(`AGENT_FLEET_FILE entry ${i}: "${field}" is required`);
    }
    if (typeof entry.localUrl === "string" && entry.localUrl !== "" && !isUrlWith(entry.localUrl, ["http:", "https:"])) {
      problems.push(`AGENT_FLEET_FILE entry ${i}: "localUrl" ${JSON.stringify(redactUrl(entry.localUrl))} must be a URL starting with http:// or https://`);
    }
    let legacyAddress: string | undefined;
    const announced: unknown = entry.legacyAddress; // as parsed: any JSON value
    if (announced !== undefined) {
      legacyAddress = typeof announced === "string" ? normalizeLegacyAddress(announced) : undefined;
      const other = legacyAddress === undefined ? undefined : byAddress.get(legacyAddress);
      if (legacyAddress === undefined) problems.push(`AGENT_FLEET_FILE entry ${i}: "legacyAddress" ${JSON.stringify(announced)} ${LEGACY_ADDRESS_RULE}`);
      else if (other !== undefined) problems.push(`AGENT_FLEET_FILE entry ${i}: "legacyAddress" ${legacyAddress} is also entry ${other}'s`);
      else byAddress.set(legacyAddress, i);
    }
    return {
      username: entry.username ?? "",
      password: entry.password ?? "",
      localUrl: entry.localUrl ?? "",
      resource: entry.resource ?? resource,
      ...(legacyAddress !== undefined ? { legacyAddress } : {}),
    };
  });
}
