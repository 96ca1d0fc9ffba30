import { isIPv4, isIPv6 } from "node:net";
import { isHostName, normalizeLegacyAddress } from "../../lib/legacy-address.js";
import { GatewayError } from "../errors.js";
import { TRANSPORTS, type DeviceRecord } from "./device.js";
import { canonicalDeviceId, DEVICE_ID_RULE } from "./device-id.js";

// Shared with the device agent, which checks the address it announces (AGENT_LEGACY_ADDRESS) the same way.
export { normalizeLegacyAddress };

/**
 * Admin input (API bodies, the import file) checked field by field into a DeviceRecord. Pure: no I/O, no
 * defaults from configuration (an absent optional field stays absent and the resolver fills it in).
 */

/** The fields a client may set. */
export const DEVICE_FIELDS = [
  "id",
  "transport",
  "jid",
  "httpTarget",
  "legacyAddress",
  "acceptAnnouncedAddress",
  "codec",
  "timeoutMs",
  "maxInFlight",
  "fallback",
] as const;
export type DeviceField = (typeof DEVICE_FIELDS)[number];

/**
 * Fields the gateway writes into its answers (`updatedAt` by the registry, `online` on a single-device GET).
 * They are accepted on input and ignored, so a GET, edit, PUT round trip works.
 */
export const READ_ONLY_FIELDS = ["updatedAt", "online"] as const;

export const CODECS = ["xep0332"] as const;
export const TIMEOUT_MS = { min: 1, max: 600_000 } as const;
export const MAX_IN_FLIGHT = { min: 1, max: 10_000 } as const;
/** RFC 7622: each part at most 1023 bytes, so a full JID is at most 3071. */
export const JID_MAX_BYTES = 3071;
const JID_PART_MAX_BYTES = 1023;
const URL_MAX_LENGTH = 2048;

export interface FieldProblem {
  field: string;
  /** Starts with the field's name, e.g. `timeoutMs must be a whole number from 1 to 600000`. */
  message: string;
}

export type DeviceCheck = { ok: true; record: DeviceRecord } | { ok: false; problems: FieldProblem[] };

/** Whitespace and control characters (C0, DEL, C1, Unicode spaces and separators). */
const UNSAFE_CHARS = /[\s\x00-\x1f\x7f-\x9f\u2028\u2029]/u;
/** RFC 7622 §3.3.1: characters a localpart may not hold. */
const LOCALPART_FORBIDDEN = /["&'/:<>@]/;

const known = new Set<string>([...DEVICE_FIELDS, ...READ_ONLY_FIELDS]);

/**
 * Every problem of `input` at once (the import reports them all), or the record. `pathId`, when given, is
 * the id from the URL: the body may leave `id` out or repeat it, but not name another device.
 */
export function checkDevice(input: unknown, pathId?: string): DeviceCheck {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return { ok: false, problems: [{ field: "body", message: "body must be a JSON object holding the device's fields" }] };
  }
  const fields = input as Record<string, unknown>;
  const problems: FieldProblem[] = [];
  const problem = (field: string, message: string) => problems.push({ field, message });

  for (const key of Object.keys(fields)) {
    if (!known.has(key)) {
      const shown = key.length > 64 ? `${key.slice(0, 64)}…` : key;
      problem(shown, `${JSON.stringify(shown)} is not a device field (fields: ${DEVICE_FIELDS.join(", ")})`);
    }
  }

  const id = checkId(fields.id, pathId, problem);

  const transport = fields.transport;
  if (transport === undefined) problem("transport", `transport is required: one of ${TRANSPORTS.join(", ")}`);
  else if (!(TRANSPORTS as readonly unknown[]).includes(transport))
    problem("transport", `transport must be one of ${TRANSPORTS.join(", ")}`);

  const record: Record<string, unknown> = { id, transport };

  const jid = fields.jid;
  if (jid !== undefined) {
    const why = typeof jid === "string" ? fullJidProblem(jid) : "must be a string";
    if (why) problem("jid", `jid ${why}`);
    else record.jid = jid;
  }

  const httpTarget = fields.httpTarget;
  if (httpTarget !== undefined) {
    const why = typeof httpTarget === "string" ? httpTargetProblem(httpTarget) : "must be a string";
    if (why) problem("httpTarget", `httpTarget ${why}`);
    else record.httpTarget = httpTarget;
  } else if (transport === "http" || transport === "shadow") {
    problem("httpTarget", `httpTarget is required when transport is ${transport}: the device's base URL, e.g. http://10.0.0.17:8080`);
  }

  const legacyAddress = fields.legacyAddress;
  if (legacyAddress !== undefined) {
    const normalized = typeof legacyAddress === "string" ? normalizeLegacyAddress(legacyAddress) : undefined;
    if (normalized === undefined)
      problem("legacyAddress", "legacyAddress must be host:port (IPv4, [IPv6] or a host name; port 1-65535), e.g. 10.0.0.17:8080");
    else record.legacyAddress = normalized;
  }

  const accept = fields.acceptAnnouncedAddress;
  if (accept !== undefined) {
    if (typeof accept !== "boolean") problem("acceptAnnouncedAddress", "acceptAnnouncedAddress must be true or false");
    else if (accept && transport !== undefined && transport !== "xmpp")
      problem(
        "acceptAnnouncedAddress",
        "acceptAnnouncedAddress needs transport xmpp: addresses are announced by the device's agent over XMPP",
      );
    // Only `true` is stored: absent and false mean the same.
    else if (accept) record.acceptAnnouncedAddress = true;
  }

  const fallback = fields.fallback;
  if (fallback !== undefined) {
    if (fallback !== "http") problem("fallback", 'fallback must be "http"');
    else if (httpTarget === undefined) problem("fallback", "fallback http needs httpTarget: the device's legacy base URL");
    else record.fallback = fallback;
  }

  const codec = fields.codec;
  if (codec !== undefined) {
    if (!(CODECS as readonly unknown[]).includes(codec)) problem("codec", `codec must be ${CODECS.join(" or ")}`);
    else record.codec = codec;
  }

  for (const [name, range] of [
    ["timeoutMs", TIMEOUT_MS],
    ["maxInFlight", MAX_IN_FLIGHT],
  ] as const) {
    const value = fields[name];
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value < range.min || value > range.max) {
      problem(name, `${name} must be a whole number from ${range.min} to ${range.max}`);
    } else {
      record[name] = value;
    }
  }

  return problems.length > 0 ? { ok: false, problems } : { ok: true, record: record as unknown as DeviceRecord };
}

/** The record, or GW_INVALID_FIELD (400) naming the first bad field. */
export function validateDevice(input: unknown, pathId?: string): DeviceRecord {
  const result = checkDevice(input, pathId);
  if (result.ok) return result.record;
  const first = result.problems[0] as FieldProblem;
  throw invalidField(first.field, first.message);
}

export function invalidField(field: string, message: string): GatewayError {
  return new GatewayError("GW_INVALID_FIELD", { field, message });
}

/** The id, canonical (lower case: canonicalDeviceId), from the path or the body; they must name one device. */
function checkId(value: unknown, pathId: string | undefined, problem: (field: string, message: string) => void): string | undefined {
  const rule = DEVICE_ID_RULE;
  if (pathId !== undefined) {
    const id = canonicalDeviceId(pathId);
    if (id === undefined) {
      problem("id", `id in the path must be ${rule}`);
      return undefined;
    }
    if (value !== undefined && (typeof value !== "string" || canonicalDeviceId(value) !== id))
      problem("id", "id in the body must be absent or the id in the path");
    return id;
  }
  const id = typeof value === "string" ? canonicalDeviceId(value) : undefined;
  if (value === undefined) problem("id", `id is required: ${rule}`);
  else if (id === undefined) problem("id", `id must be ${rule}`);
  return id;
}

/** Why `jid` is not a full JID `local@domain/resource` of sane characters, or undefined when it is one. */
export function fullJidProblem(jid: string): string | undefined {
  const shape = "must be a full JID, local@domain/resource";
  if (Buffer.byteLength(jid) > JID_MAX_BYTES) return `must be at most ${JID_MAX_BYTES} bytes`;
  if (UNSAFE_CHARS.test(jid)) return `${shape}, without spaces or control characters`;
  const slash = jid.indexOf("/");
  const at = jid.indexOf("@");
  if (at <= 0 || slash === -1 || at > slash) return shape;
  const local = jid.slice(0, at);
  const domain = jid.slice(at + 1, slash);
  const resource = jid.slice(slash + 1);
  if (local.length === 0 || domain.length === 0 || resource.length === 0) return shape;
  if (LOCALPART_FORBIDDEN.test(local)) return `${shape}; the local part may not hold " & ' / : < > @`;
  if (!isHostName(domain) && !isIPv4(domain) && !(domain.startsWith("[") && domain.endsWith("]") && isIPv6(domain.slice(1, -1)))) {
    return `${shape}; the domain must be a host name or an IP address`;
  }
  for (const part of [local, domain, resource]) {
    if (Buffer.byteLength(part) > JID_PART_MAX_BYTES) return `${shape}; each part at most ${JID_PART_MAX_BYTES} bytes`;
  }
  return undefined;
}

/** Why `value` is not an http(s) base URL without credentials, query or fragment, or undefined when it is one. */
export function httpTargetProblem(value: string): string | undefined {
  const shape = "must be an http:// or https:// URL, e.g. http://10.0.0.17:8080";
  if (value.length > URL_MAX_LENGTH) return `must be at most ${URL_MAX_LENGTH} characters`;
  // The URL parser would silently drop these; refuse them instead of storing something else than was meant.
  if (UNSAFE_CHARS.test(value) || value.includes("\\")) return `${shape}, without spaces, backslashes or control characters`;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return shape;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return shape;
  if (!/^https?:\/\/[^/]/i.test(value) || url.hostname === "") return `${shape} with a host`;
  const authority = value.slice(value.indexOf("//") + 2).split("/")[0] ?? "";
  if (authority.includes("@") || url.username !== "" || url.password !== "") return `${shape}, without user or password`;
  if (value.includes("?")) return `${shape}, without a query string`;
  if (value.includes("#")) return `${shape}, without a fragment`;
  return undefined;
}
