import { readFileSync } from "node:fs";
import { EnvReader, isUrlWith, redactUrl, type Env, type LogLevel, type SettingFallback, type SettingValue } from "../../lib/env.js";
import { normalizeLegacyAddress } from "../../lib/legacy-address.js";
import type { AgentIdentity, AgentOptions } from "./agent.js";
import { readTracingConfig, type TracingConfig } from "../../lib/tracing/settings.js";
import { AGENT_SERVICE_NAME, AGENT_SETTINGS, LEGACY_ADDRESS_RULE, type AgentSettingName } from "./settings.js";
import { hasDirectTlsEntry, isServiceList, SERVICE_LIST_RULE } from "./servers.js";
import { readCaFile, type AgentTlsOptions } from "./tls.js";

export interface AgentConfig {
  /** One entry per device identity this process runs. */
  agents: AgentOptions[];
  logLevel: LogLevel;
  /** OpenTelemetry tracing: undefined when the OTEL_ variables do not turn it on (README, "Tracing"). */
  tracing: TracingConfig | undefined;
}

/**
 * The agent's environment (README, "Device agent"). One identity from AGENT_USERNAME/AGENT_PASSWORD/
 * AGENT_LOCAL_URL (and AGENT_LEGACY_ADDRESS), or many from AGENT_FLEET_FILE (a JSON array of {username,
 * password, localUrl, resource?, legacyAddress?}) sharing the rest of the settings.
 */
export function loadAgentConfig(env: Env): AgentConfig {
  const r = new EnvReader(env);
  const read = agentReader(r);
  const service = read("AGENT_SERVICE");
  // Checked here rather than by a rule of the table, so that the line quotes each entry redacted (a password
  // in a URL's userinfo is never echoed), as EnvReader does for URL settings.
  if (!isServiceList(service))
    r.problems.push(`AGENT_SERVICE=${JSON.stringify(service.split(",").map(redactUrl).join(","))} ${SERVICE_LIST_RULE}`);
  const domain = read("AGENT_DOMAIN");
  const resource = read("AGENT_RESOURCE");
  const saslMechanism = read("AGENT_SASL_MECHANISM");
  const shared = {
    service,
    domain,
    gatewayJid: read("AGENT_GATEWAY_JID"),
    localTimeoutMs: read("AGENT_LOCAL_TIMEOUT_MS"),
    presenceIntervalMs: read("AGENT_PRESENCE_INTERVAL_S") * 1000,
    maxBodyBytes: read("AGENT_MAX_BODY_BYTES"),
    chunkThresholdBytes: read("AGENT_CHUNK_THRESHOLD_BYTES"),
    chunkSizeBytes: read("AGENT_CHUNK_SIZE_BYTES"),
    ...(saslMechanism !== undefined ? { saslMechanism } : {}),
    ...readTls(r, service),
  };
  const fleetFile = read("AGENT_FLEET_FILE");
  const legacyAddressText = read("AGENT_LEGACY_ADDRESS");
  const legacyAddress = legacyAddressText === undefined ? undefined : normalizeLegacyAddress(legacyAddressText);
  let identities: AgentIdentity[];
  if (fleetFile) {
    if (legacyAddressText !== undefined) {
      // One address for every device of a fleet would make them all claim it: the first one would win.
      r.problems.push('AGENT_LEGACY_ADDRESS is for a single identity: with AGENT_FLEET_FILE, give each entry its own "legacyAddress"');
    }
    identities = readFleet(fleetFile, resource, r.problems);
  } else {
    const localUrl = read("AGENT_LOCAL_URL");
    identities = [
      {
        username: read("AGENT_USERNAME"),
        password: read("AGENT_PASSWORD"),
        resource,
        localUrl,
        ...(legacyAddress !== undefined ? { legacyAddress } : {}),
      },
    ];
  }
  const logLevel = read("LOG_LEVEL");
  r.done();
  const tracing = readTracingConfig(r, AGENT_SETTINGS, AGENT_SERVICE_NAME);
  return { agents: identities.map((id) => ({ ...shared, ...id })), logLevel, tracing };
}

/** Reads one of AGENT_SETTINGS as its entry says (EnvReader.read). */
function agentReader(r: EnvReader) {
  return <K extends AgentSettingName>(
    name: K,
    ...fallback: SettingFallback<(typeof AGENT_SETTINGS)[K]>
  ): SettingValue<(typeof AGENT_SETTINGS)[K]> => r.read(name, AGENT_SETTINGS[name], ...fallback);
}

/**
 * AGENT_TLS and AGENT_TLS_CA_FILE; nothing when neither is set (the connection then applies
 * `defaultTlsMode`). The CA file is read once, here, so a bad one stops the start instead of every attempt.
 */
function readTls(r: EnvReader, service: string): { tls?: AgentTlsOptions } {
  const read = agentReader(r);
  const mode = read("AGENT_TLS");
  const caFile = read("AGENT_TLS_CA_FILE");
  if (mode === undefined && caFile === undefined) return {};
  const tls: AgentTlsOptions = {};
  if (mode !== undefined) tls.mode = mode;
  if (tls.mode === "off" && hasDirectTlsEntry(service)) {
    r.problems.push(
      `AGENT_TLS=off cannot apply to AGENT_SERVICE=${JSON.stringify(redactUrl(service))}: xmpps:// is TLS from the first byte (XEP-0368); use xmpp:// for plain text`,
    );
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
      if (entry === raw && (typeof entry[field] !== "string" || entry[field] === ""))
        problems.push(`AGENT_FLEET_FILE entry ${i}: "${field}" is required`);
    }
    if (typeof entry.localUrl === "string" && entry.localUrl !== "" && !isUrlWith(entry.localUrl, ["http:", "https:"])) {
      problems.push(
        `AGENT_FLEET_FILE entry ${i}: "localUrl" ${JSON.stringify(redactUrl(entry.localUrl))} must be a URL starting with http:// or https://`,
      );
    }
    let legacyAddress: string | undefined;
    const announced: unknown = entry.legacyAddress; // as parsed: any JSON value
    if (announced !== undefined) {
      legacyAddress = typeof announced === "string" ? normalizeLegacyAddress(announced) : undefined;
      const other = legacyAddress === undefined ? undefined : byAddress.get(legacyAddress);
      if (legacyAddress === undefined)
        problems.push(`AGENT_FLEET_FILE entry ${i}: "legacyAddress" ${JSON.stringify(announced)} ${LEGACY_ADDRESS_RULE}`);
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
