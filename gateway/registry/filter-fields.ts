import { TRANSPORTS, type Transport } from "./device.js";
import { DEVICE_ID_RULE } from "./device-id.js";
import type { DeviceFilter } from "./device-listing.js";
import { invalidField } from "./validate.js";

/**
 * The registry's filters as clients write them (docs/admin-api.md): the listing's parameters, a bulk
 * move's `filter` and a wave's. Pure; every bad value is 400 GW_INVALID_FIELD naming it.
 */

export type FilterField = "transport" | "online" | "prefix";

const PREFIX = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * A JSON `filter` object holding only the `allowed` fields (a bulk move takes all three, a wave no
 * `transport`): an unknown field is refused, so a typo never widens what the filter selects.
 */
export function parseFilterObject(value: unknown, field: string, allowed: readonly FilterField[]): DeviceFilter {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw invalidField(field, `${field} must be an object of ${allowed.join(", ")}`);
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!(allowed as readonly string[]).includes(key)) {
      const shown = key.length > 64 ? `${key.slice(0, 64)}…` : key;
      throw invalidField(`${field}.${shown}`, `${JSON.stringify(shown)} is not a filter here (filters: ${allowed.join(", ")})`);
    }
  }
  const { transport, online, prefix } = fields;
  const filter: DeviceFilter = {};
  if (transport !== undefined) {
    const parts = typeof transport === "string" ? transport.split(",") : transport;
    if (!Array.isArray(parts) || parts.length === 0 || parts.some((p) => typeof p !== "string"))
      throw invalidField(`${field}.transport`, `${field}.transport must be a transport or a list of them: ${TRANSPORTS.join(", ")}`);
    filter.transports = parseTransports(parts as string[], `${field}.transport`);
  }
  if (online !== undefined) {
    if (typeof online !== "boolean") throw invalidField(`${field}.online`, `${field}.online must be true or false`);
    filter.online = online;
  }
  if (prefix !== undefined) {
    if (typeof prefix !== "string") throw invalidField(`${field}.prefix`, `${field}.prefix must be ${DEVICE_ID_RULE}`);
    filter.prefix = parsePrefix(prefix, `${field}.prefix`);
  }
  return filter;
}

export function parseTransports(parts: readonly string[], field: string): Set<Transport> {
  const transports = new Set<Transport>();
  for (const part of parts) {
    if (!(TRANSPORTS as readonly string[]).includes(part))
      throw invalidField(field, `${field} must be one of ${TRANSPORTS.join(", ")} (several comma-separated)`);
    transports.add(part as Transport);
  }
  return transports;
}

/** Ids are stored in lower case (README "Device ids"): so is the prefix they are compared with. */
export function parsePrefix(text: string, field: string): string {
  if (!PREFIX.test(text)) throw invalidField(field, `${field} must be ${DEVICE_ID_RULE}`);
  return text.toLowerCase();
}
