// The admin API's listing walked from its first page to `nextCursor: null` (docs/admin-api.md, "Listing").
import assert from "node:assert/strict";
import type { DeviceRecord } from "../../gateway/registry/device.js";

export interface ListingPage {
  devices: DeviceRecord[];
  nextCursor: string | null;
  remaining: number;
}

/** One page: GET /admin/devices with `params` (a cursor added by the caller); fails the test unless 200. */
export async function listingPage(gatewayUrl: string, token: string, params: Record<string, string> = {}): Promise<ListingPage> {
  const res = await fetch(`${gatewayUrl}/admin/devices?${new URLSearchParams(params).toString()}`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const text = await res.text();
  assert.equal(res.status, 200, text.slice(0, 500));
  return JSON.parse(text) as ListingPage;
}

/** Every page's entries, in order, following nextCursor; `onPage` sees each page as it comes (at most `maxPages`). */
export async function listAll(
  gatewayUrl: string,
  token: string,
  params: Record<string, string> = {},
  opts: { maxPages?: number; onPage?: (page: ListingPage) => Promise<void> | void } = {},
): Promise<DeviceRecord[]> {
  const all: DeviceRecord[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < (opts.maxPages ?? 10_000); pages++) {
    const page = await listingPage(gatewayUrl, token, cursor === null ? params : { ...params, cursor });
    all.push(...page.devices);
    await opts.onPage?.(page);
    if (page.nextCursor === null) return all;
    cursor = page.nextCursor;
  }
  assert.fail(`the walk did not end within ${opts.maxPages ?? 10_000} pages`);
}
