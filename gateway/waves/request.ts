import { GatewayError } from "../errors.js";
import { canonicalDeviceId } from "../registry/device-id.js";
import type { DeviceFilter } from "../registry/device-listing.js";
import { parseFilterObject } from "../registry/filter-fields.js";

/** A wave as asked for (`POST /admin/waves`), checked: exactly one of `ids` or `percent`. */
export interface WaveRequest {
  ids?: string[];
  percent?: number;
  filter: Pick<DeviceFilter, "prefix" | "online">;
  windowMs: number;
  maxErrorRateIncrease: number;
  minRequests: number;
  dryRun: boolean;
}

export const WAVE_LIMITS = {
  ids: { min: 1, max: 10_000 },
  windowMs: { min: 1000, max: 86_400_000, default: 600_000 },
  maxErrorRateIncrease: { min: 0, max: 1, default: 0.05 },
  minRequests: { min: 1, max: 1_000_000, default: 20 },
} as const;

const FIELDS = ["ids", "percent", "filter", "windowMs", "maxErrorRateIncrease", "minRequests", "dryRun"];

/**
 * The body of `POST /admin/waves` (docs/admin-api.md), or 400 GW_INVALID_FIELD naming the first field at
 * fault. Unknown fields are refused: a misspelt `filter` must not widen a wave to the whole fleet.
 */
export function parseWaveRequest(body: unknown): WaveRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalid("body", "body must be a JSON object");
  const fields = new Map<string, unknown>(Object.entries(body));
  for (const key of fields.keys()) {
    if (!FIELDS.includes(key))
      throw invalid(key.slice(0, 64), `${JSON.stringify(key.slice(0, 64))} is not a wave field (fields: ${FIELDS.join(", ")})`);
  }
  const ids = fields.get("ids");
  const percent = fields.get("percent");
  const filter = fields.get("filter");
  if (ids === undefined && percent === undefined) throw invalid("percent", "exactly one of ids or percent is required");
  if (ids !== undefined && percent !== undefined) throw invalid("percent", "exactly one of ids or percent: not both");
  if (ids !== undefined && filter !== undefined) throw invalid("filter", "filter goes with percent; with ids, the ids are the wave");
  const request: WaveRequest = {
    filter: filter === undefined ? {} : parseFilterObject(filter, "filter", ["prefix", "online"]),
    windowMs: wholeNumber(fields, "windowMs", WAVE_LIMITS.windowMs),
    maxErrorRateIncrease: rate(fields.get("maxErrorRateIncrease")),
    minRequests: wholeNumber(fields, "minRequests", WAVE_LIMITS.minRequests),
    dryRun: flag(fields.get("dryRun")),
  };
  if (ids !== undefined) request.ids = parseIds(ids);
  else request.percent = parsePercent(percent);
  return request;
}

function parseIds(value: unknown): string[] {
  const { min, max } = WAVE_LIMITS.ids;
  if (!Array.isArray(value) || value.length < min || value.length > max)
    throw invalid("ids", `ids must be an array of ${min} to ${max} device ids`);
  const seen = new Set<string>();
  for (const raw of value as unknown[]) {
    const id = typeof raw === "string" ? canonicalDeviceId(raw) : undefined;
    if (id === undefined) throw invalid("ids", `ids: ${JSON.stringify(raw).slice(0, 80)} is not a device id (1-64 of [A-Za-z0-9._-])`);
    if (seen.has(id)) throw invalid("ids", `ids: ${id} is given twice`);
    seen.add(id);
  }
  return [...seen];
}

function parsePercent(value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > 100)
    throw invalid("percent", "percent must be a number above 0 and at most 100");
  return value;
}

function wholeNumber(fields: Map<string, unknown>, name: "windowMs" | "minRequests", range: { min: number; max: number; default: number }) {
  const value = fields.get(name);
  if (value === undefined) return range.default;
  if (typeof value !== "number" || !Number.isInteger(value) || value < range.min || value > range.max)
    throw invalid(name, `${name} must be a whole number from ${range.min} to ${range.max}`);
  return value;
}

function rate(value: unknown): number {
  const { min, max } = WAVE_LIMITS.maxErrorRateIncrease;
  if (value === undefined) return WAVE_LIMITS.maxErrorRateIncrease.default;
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max)
    throw invalid("maxErrorRateIncrease", `maxErrorRateIncrease must be a number from ${min} to ${max}`);
  return value;
}

function flag(value: unknown): boolean {
  if (value === undefined) return false;
  if (typeof value !== "boolean") throw invalid("dryRun", "dryRun must be true or false");
  return value;
}

function invalid(field: string, message: string): GatewayError {
  return new GatewayError("GW_INVALID_FIELD", { field, message });
}
