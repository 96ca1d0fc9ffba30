import type { Request, Response } from "express";
import { isDeviceId } from "../../registry/device-id.js";
import { patchDevice } from "../../registry/device-patch.js";
import { DEVICE_FIELDS, invalidField, READ_ONLY_FIELDS, validateDevice } from "../../registry/validate.js";
import { ADMIN_MAX_BODY_BYTES, audit, notAllowed, readJson, unknownDevice, type AdminRoute, type AdminRouteDeps } from "./admin-shared.js";

const ITEM = /^\/admin\/devices\/([^/]+)$/;
const patchable = new Set<string>([...DEVICE_FIELDS, ...READ_ONLY_FIELDS]);

/** `GET|PUT|PATCH|DELETE /admin/devices/{id}`: one entry at a time (README, "Admin API"). */
export function deviceRoute(deps: AdminRouteDeps): AdminRoute {
  return async (req, res) => {
    const item = ITEM.exec(req.path);
    if (!item) return false;
    const id = item[1] ?? "";
    if (!isDeviceId(id)) throw invalidField("id", "id in the path must be 1-64 of [A-Za-z0-9._-]");
    switch (req.method) {
      case "GET":
      case "HEAD":
        await getOne(deps, id, res);
        return true;
      case "PUT":
        await putOne(deps, id, req, res);
        return true;
      case "PATCH":
        await patchOne(deps, id, req, res);
        return true;
      case "DELETE":
        await deleteOne(deps, id, res);
        return true;
      default:
        // `POST /admin/devices/bulk` (admin-bulk.ts) shares the path of a device named "bulk".
        throw notAllowed(res, id === "bulk" ? "GET, HEAD, PUT, PATCH, DELETE, POST" : "GET, HEAD, PUT, PATCH, DELETE");
    }
  };
}

async function getOne(deps: AdminRouteDeps, id: string, res: Response): Promise<void> {
  const record = await deps.registry.get(id);
  if (!record) throw unknownDevice(id);
  let online: boolean | null = null;
  if (deps.presence) {
    try {
      online = await deps.presence.isOnline(id);
    } catch (err) {
      deps.logger.warn({ event: "presence-lookup-failed", deviceId: id, err: (err as Error).message }, "presence unknown");
    }
  }
  res.json({ ...record, online });
}

async function putOne(deps: AdminRouteDeps, id: string, req: Request, res: Response): Promise<void> {
  const record = validateDevice(await readJson(req, deps.maxBodyBytes ?? ADMIN_MAX_BODY_BYTES), id);
  const { created, record: stored } = await deps.registry.upsert(record);
  audit(deps.logger, created ? "created" : "replaced", stored);
  if (created) res.status(201).setHeader("Location", `/admin/devices/${id}`);
  res.json(stored);
}

/** Merges into the stored entry (`null` removes an optional field), then validates the result as a whole. */
async function patchOne(deps: AdminRouteDeps, id: string, req: Request, res: Response): Promise<void> {
  const patch = await readJson(req, deps.maxBodyBytes ?? ADMIN_MAX_BODY_BYTES);
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
    throw invalidField("body", "body must be a JSON object holding the fields to change");
  }
  for (const [key, value] of Object.entries(patch)) {
    if (!patchable.has(key))
      throw invalidField(
        key.slice(0, 64),
        `${JSON.stringify(key.slice(0, 64))} is not a device field (fields: ${DEVICE_FIELDS.join(", ")})`,
      );
    if (key === "id" && value !== id)
      throw invalidField("id", "id cannot be changed or removed: leave it out or repeat the id in the path");
  }
  const existing = await deps.registry.get(id);
  if (!existing) throw unknownDevice(id);
  const { record: stored } = await deps.registry.upsert(patchDevice(existing, patch as Record<string, unknown>, id), { existing: true });
  audit(deps.logger, "patched", stored);
  res.json(stored);
}

async function deleteOne(deps: AdminRouteDeps, id: string, res: Response): Promise<void> {
  if (!(await deps.registry.delete(id))) throw unknownDevice(id);
  deps.logger.info({ event: "device-deleted", deviceId: id }, "registry entry deleted");
  res.status(204).end();
}
