import type { Request } from "express";
import type { DeviceRecord } from "../../registry/device.js";
import { devicePage, type OnlineLookup, type PageRequest } from "../../registry/device-listing.js";
import { invalidField } from "../../registry/validate.js";
import { encodeCursor, parseListingQuery } from "./admin-query.js";
import { notAllowed, type AdminRoute, type AdminRouteDeps } from "./admin-shared.js";

const COLLECTION = /^\/admin\/devices\/?$/;

/** One page as the API answers it (docs/admin-api.md, "Listing"). */
export interface ListingAnswer {
  devices: DeviceRecord[];
  nextCursor: string | null;
  remaining: number;
}

/** `GET /admin/devices`: the registry in pages, by id, filtered (docs/admin-api.md, "Listing"). */
export function listingRoute(deps: AdminRouteDeps): AdminRoute {
  return async (req, res) => {
    if (!COLLECTION.test(req.path)) return false;
    if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed(res, "GET, HEAD");
    res.json(await listPage(deps, parseListingQuery(queryString(req))));
    return true;
  };
}

/** One page, for the listing and for a bulk move by filter. */
export async function listPage(deps: AdminRouteDeps, q: PageRequest, onlineField = "online"): Promise<ListingAnswer> {
  const online = onlineLookup(deps);
  if (q.online !== undefined && online === undefined) throw invalidField(onlineField, "presence is not known to this gateway");
  const page = await devicePage({ devices: deps.registry, online }, q);
  return { devices: page.devices, nextCursor: page.next === undefined ? null : encodeCursor(page.next), remaining: page.remaining };
}

/** The presence of many devices at once: the lookup's own batch, else one question per device. */
function onlineLookup(deps: AdminRouteDeps): OnlineLookup | undefined {
  const presence = deps.presence;
  if (!presence) return undefined;
  const batch = presence.areOnline?.bind(presence);
  if (batch) return { areOnline: batch };
  return { areOnline: (records) => Promise.all(records.map(async (r) => (await presence.isOnline(r.id)) === true)) };
}

/** The raw query string (express's own parsing would turn `a[b]=` into objects and repeated names into lists). */
function queryString(req: Request): string {
  const url = req.originalUrl;
  const q = url.indexOf("?");
  return q === -1 ? "" : url.slice(q + 1);
}
