import type { DeviceFilter, PageRequest } from "../../registry/device-listing.js";
import { parseFilterObject, parsePrefix, parseTransports } from "../../registry/filter-fields.js";
import { invalidField } from "../../registry/validate.js";

/**
 * The listing's parameters and the bulk move's filter checked into a page request (docs/admin-api.md,
 * "Listing" and "Bulk moves"). Pure. Every unknown parameter and every bad value is 400 GW_INVALID_FIELD
 * naming it: a typo must never widen a listing, or a bulk move, to the whole fleet.
 */

export const LIMIT = { min: 1, max: 1000, listing: 100, bulk: 500 } as const;

const LISTING_PARAMS = new Set(["limit", "cursor", "transport", "online", "prefix"]);
/** A cursor is the base64url (RFC 4648 §5, unpadded) of an id: ids are printable ASCII. */
const CURSOR = /^[A-Za-z0-9_-]{1,1400}$/;
const CURSOR_ID = /^[\x21-\x7e]{1,1024}$/;

/** The cursor that continues a walk after `id`: opaque to clients, which only hand it back. */
export function encodeCursor(id: string): string {
  return Buffer.from(id, "utf8").toString("base64url");
}

/** The id a cursor continues after; 400 naming `field` unless the text is a cursor encodeCursor() made. */
export function decodeCursor(text: string, field = "cursor"): string {
  const id = CURSOR.test(text) ? Buffer.from(text, "base64url").toString("latin1") : "";
  // Decoding is lenient (it drops what is not base64url); encoding back must give the text again.
  if (!CURSOR_ID.test(id) || encodeCursor(id) !== text)
    throw invalidField(field, `${field} is not a cursor this gateway answered (nextCursor)`);
  return id;
}

/** `GET /admin/devices?…` (the query string without its `?`): a page request. */
export function parseListingQuery(search: string): PageRequest {
  const params = new URLSearchParams(search);
  const seen = new Set<string>();
  for (const name of params.keys()) {
    const shown = name.length > 64 ? `${name.slice(0, 64)}…` : name;
    if (!LISTING_PARAMS.has(name))
      throw invalidField(
        shown,
        `${JSON.stringify(shown)} is not a parameter of the listing (parameters: ${[...LISTING_PARAMS].join(", ")})`,
      );
    if (seen.has(name)) throw invalidField(name, `${name} is given more than once`);
    seen.add(name);
  }
  const value = (name: string): string | undefined => params.get(name) ?? undefined;
  const limit = value("limit");
  const cursor = value("cursor");
  const transport = value("transport");
  const online = value("online");
  const prefix = value("prefix");
  return {
    limit: limit === undefined ? LIMIT.listing : parseLimitText(limit, "limit"),
    ...(cursor !== undefined ? { after: decodeCursor(cursor) } : {}),
    ...(transport !== undefined ? { transports: parseTransports(transport.split(","), "transport") } : {}),
    ...(online !== undefined ? { online: parseOnlineText(online, "online") } : {}),
    ...(prefix !== undefined ? { prefix: parsePrefix(prefix, "prefix") } : {}),
  };
}

/** A bulk move's `filter` (a JSON object of the listing's `transport`, `online`, `prefix`; at least one). */
export function parseFilter(value: unknown, field = "filter"): DeviceFilter {
  const filter = parseFilterObject(value, field, ["transport", "online", "prefix"]);
  if (filter.transports === undefined && filter.online === undefined && filter.prefix === undefined)
    throw invalidField(field, `${field} needs at least one of transport, online, prefix: a bulk move of the whole fleet is not a filter`);
  return filter;
}

/** A whole number from 1 to 1000, as JSON. */
export function parseLimit(value: unknown, field = "limit"): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < LIMIT.min || value > LIMIT.max)
    throw invalidField(field, `${field} must be a whole number from ${LIMIT.min} to ${LIMIT.max}`);
  return value;
}

function parseLimitText(text: string, field: string): number {
  if (!/^[0-9]{1,4}$/.test(text)) throw invalidField(field, `${field} must be a whole number from ${LIMIT.min} to ${LIMIT.max}`);
  return parseLimit(Number(text), field);
}

function parseOnlineText(text: string, field: string): boolean {
  if (text !== "true" && text !== "false") throw invalidField(field, `${field} must be true or false`);
  return text === "true";
}
