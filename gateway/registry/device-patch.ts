import type { DeviceRecord } from "./device.js";
import { validateDevice } from "./validate.js";

/**
 * A change of some fields of a stored entry, as `PATCH /admin/devices/{id}` and each device of a bulk move
 * make it (README, "Admin API"): the fields merged into the entry (`null` removes an optional one, as JSON
 * Merge Patch does, RFC 7396 §2), then the result checked as a whole (validateDevice: GW_INVALID_FIELD naming
 * the first bad field). The caller has checked which fields may be changed.
 */
export function patchDevice(existing: DeviceRecord, patch: Readonly<Record<string, unknown>>, pathId = existing.id): DeviceRecord {
  // Object.fromEntries defines own properties only: a "__proto__" key could not reach a prototype.
  const merged = new Map<string, unknown>(Object.entries(existing));
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) merged.delete(key);
    else merged.set(key, value);
  }
  return validateDevice(Object.fromEntries(merged), pathId);
}

/** Whether two entries hold the same settings, whatever their `updatedAt` and the order of their fields. */
export function sameSettings(a: DeviceRecord, b: DeviceRecord): boolean {
  return settingsKey(a) === settingsKey(b);
}

function settingsKey(record: DeviceRecord): string {
  const { updatedAt: _updatedAt, ...settings } = record;
  return JSON.stringify(Object.entries(settings).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
}
