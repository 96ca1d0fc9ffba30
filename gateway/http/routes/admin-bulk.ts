import { isGatewayError, type ErrorCode } from "../../errors.js";
import type { DeviceRecord, Transport } from "../../registry/device.js";
import { patchDevice, sameSettings } from "../../registry/device-patch.js";
import { parseBulkRequest, type BulkRequest } from "./admin-bulk-request.js";
import { listPage } from "./admin-listing.js";
import { audit, BULK_MAX_BODY_BYTES, readJson, unknownDevice, type AdminRoute, type AdminRouteDeps } from "./admin-shared.js";

/** Devices written at once by one bulk move: each write is a few Redis round trips and a change notice. */
const CONCURRENT_WRITES = 16;

export type BulkResult =
  | { id: string; outcome: "changed"; transport: { from: Transport; to: Transport } }
  | { id: string; outcome: "unchanged" }
  | { id: string; outcome: "failed"; error: { code: ErrorCode; message: string; field?: string } };

export interface BulkAnswer {
  dryRun: boolean;
  matched: number;
  changed: number;
  unchanged: number;
  failed: number;
  results: BulkResult[];
  nextCursor: string | null;
  remaining: number;
}

/**
 * `POST /admin/devices/bulk` (docs/admin-api.md, "Bulk moves"): the same change on many devices, each made
 * on its own as a PATCH makes it (patchDevice, then upsert: its change notice and its log line), so that one
 * device's failure neither stops nor undoes the others. A dry run reads and checks, and writes nothing.
 */
export function bulkRoute(deps: AdminRouteDeps): AdminRoute {
  return async (req, res) => {
    if (req.path !== "/admin/devices/bulk" || req.method !== "POST") return false;
    const request = parseBulkRequest(await readJson(req, deps.bulkMaxBodyBytes ?? BULK_MAX_BODY_BYTES));
    const answer = await bulkMove(deps, request);
    deps.logger.info(
      {
        event: "devices-bulk",
        dryRun: answer.dryRun,
        matched: answer.matched,
        changed: answer.changed,
        failed: answer.failed,
        set: request.set,
      },
      answer.dryRun ? "bulk move checked (dry run)" : "bulk move",
    );
    res.json(answer);
    return true;
  };
}

async function bulkMove(deps: AdminRouteDeps, request: BulkRequest): Promise<BulkAnswer> {
  const { target } = request;
  let devices: Array<{ id: string; record: DeviceRecord | undefined }>;
  let nextCursor: string | null = null;
  let remaining = 0;
  if ("ids" in target) {
    const records = await deps.registry.getMany(target.ids);
    devices = target.ids.map((id, i) => ({ id, record: records[i] }));
  } else {
    const page = await listPage(deps, { ...target.filter, limit: target.limit, after: target.after }, "filter.online");
    devices = page.devices.map((record) => ({ id: record.id, record }));
    ({ nextCursor, remaining } = page);
  }
  const results = await mapLimited(devices, CONCURRENT_WRITES, ({ id, record }) => moveOne(deps, request, id, record));
  const count = (outcome: BulkResult["outcome"]) => results.filter((r) => r.outcome === outcome).length;
  return {
    dryRun: request.dryRun,
    matched: results.length,
    changed: count("changed"),
    unchanged: count("unchanged"),
    failed: count("failed"),
    results,
    nextCursor,
    remaining,
  };
}

async function moveOne(deps: AdminRouteDeps, request: BulkRequest, id: string, existing: DeviceRecord | undefined): Promise<BulkResult> {
  try {
    if (!existing) throw unknownDevice(id);
    const record = patchDevice(existing, request.set);
    if (sameSettings(existing, record)) return { id, outcome: "unchanged" };
    let to = record.transport;
    if (!request.dryRun) {
      const { record: stored } = await deps.registry.upsert(record, { existing: true });
      audit(deps.logger, "patched", stored, { bulk: true });
      to = stored.transport;
    }
    return { id, outcome: "changed", transport: { from: existing.transport, to } };
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    const error = { code: err.code, message: err.message, ...(err.field !== undefined ? { field: err.field } : {}) };
    return { id, outcome: "failed", error };
  }
}

/** `fn` over `items`, at most `limit` at once; the answers in the items' order. */
async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const answers = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      answers[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return answers;
}
