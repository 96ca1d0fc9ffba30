import { canonicalDeviceId, DEVICE_ID_RULE } from "../../registry/device-id.js";
import type { DeviceFilter } from "../../registry/device-listing.js";
import { checkDevice, invalidField } from "../../registry/validate.js";
import { decodeCursor, LIMIT, parseFilter, parseLimit } from "./admin-query.js";

/**
 * A bulk move's body checked (docs/admin-api.md, "Bulk moves"). Pure. Everything wrong with the request
 * itself is 400 GW_INVALID_FIELD before any device is read; what is wrong only for some devices is
 * answered per device.
 */

/** What may be set on many devices at once; `id`, `jid`, `httpTarget` and `legacyAddress` are each device's own. */
export const BULK_SET_FIELDS = ["transport", "fallback", "timeoutMs", "maxInFlight", "codec", "acceptAnnouncedAddress"] as const;
export const BULK_MAX_IDS = 1000;

export type BulkTarget = { ids: string[] } | { filter: DeviceFilter; limit: number; after: string | undefined };

export interface BulkRequest {
  target: BulkTarget;
  /** The fields to merge into each entry (`null`: remove). */
  set: Record<string, unknown>;
  dryRun: boolean;
}

const BODY_FIELDS = new Set(["ids", "filter", "set", "dryRun", "limit", "cursor"]);
const settable = new Set<string>(BULK_SET_FIELDS);

export function parseBulkRequest(body: unknown): BulkRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body))
    throw invalidField("body", "body must be a JSON object: ids or filter, and set");
  const fields = body as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!BODY_FIELDS.has(key)) {
      const shown = key.length > 64 ? `${key.slice(0, 64)}…` : key;
      throw invalidField(shown, `${JSON.stringify(shown)} is not a field of a bulk move (fields: ${[...BODY_FIELDS].join(", ")})`);
    }
  }
  const { ids, filter, set, dryRun, limit, cursor } = fields;
  if (ids !== undefined && filter !== undefined) throw invalidField("ids", "give ids or filter, not both");
  if (ids === undefined && filter === undefined) throw invalidField("ids", "ids or filter is required: which devices to move");
  let target: BulkTarget;
  if (ids !== undefined) {
    for (const [name, value] of [
      ["limit", limit],
      ["cursor", cursor],
    ] as const) {
      if (value !== undefined) throw invalidField(name, `${name} goes with filter; ids are handled in one call`);
    }
    target = { ids: parseIds(ids) };
  } else {
    target = {
      filter: parseFilter(filter),
      limit: limit === undefined ? LIMIT.bulk : parseLimit(limit),
      after: cursor === undefined || cursor === null ? undefined : parseCursor(cursor),
    };
  }
  if (dryRun !== undefined && typeof dryRun !== "boolean") throw invalidField("dryRun", "dryRun must be true or false");
  return { target, set: parseSet(set), dryRun: dryRun === true };
}

/** 1-1000 device ids, canonical, each once (a repeated id, in any case, is one device). */
function parseIds(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > BULK_MAX_IDS)
    throw invalidField("ids", `ids must be a list of 1 to ${BULK_MAX_IDS} device ids`);
  const ids = new Set<string>();
  value.forEach((id: unknown, i) => {
    const canonical = typeof id === "string" ? canonicalDeviceId(id) : undefined;
    if (canonical === undefined) throw invalidField("ids", `ids[${i}] must be a device id: ${DEVICE_ID_RULE}`);
    ids.add(canonical);
  });
  return [...ids];
}

function parseCursor(value: unknown): string {
  if (typeof value !== "string") throw invalidField("cursor", "cursor must be null or the nextCursor of the call before");
  return decodeCursor(value);
}

/**
 * The fields to set: only BULK_SET_FIELDS, and each value one that some device could take (checked with the
 * validator, on a stand-in entry that holds what the other fields need): a value no device could take is the
 * request's fault, not each device's. What depends on the device (a `fallback` without its `httpTarget`) is
 * answered per device.
 */
function parseSet(value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value) || Object.keys(value).length === 0)
    throw invalidField("set", `set must be an object of the fields to change (${BULK_SET_FIELDS.join(", ")})`);
  const set = value as Record<string, unknown>;
  for (const key of Object.keys(set)) {
    const shown = key.length > 64 ? `${key.slice(0, 64)}…` : key;
    if (!settable.has(key))
      throw invalidField(
        `set.${shown}`,
        `${JSON.stringify(shown)} cannot be set on many devices at once (fields: ${BULK_SET_FIELDS.join(", ")})`,
      );
  }
  if (set.transport === null) throw invalidField("set.transport", "set.transport cannot be removed: every entry has one");
  const given = Object.fromEntries(Object.entries(set).filter(([, v]) => v !== null));
  const check = checkDevice({ transport: "xmpp", httpTarget: "http://device.invalid", ...given, id: "bulk-check" });
  if (!check.ok) {
    const problem = check.problems.find((p) => Object.hasOwn(set, p.field));
    if (problem) throw invalidField(`set.${problem.field}`, `set.${problem.message}`);
  }
  return set;
}
