import { createHash, timingSafeEqual } from "node:crypto";
import type { Request, Response, Router } from "express";
import express from "express";
import { GatewayError, isGatewayError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { DeviceRecord } from "../../registry/device.js";
import type { DeviceStore } from "../../registry/redis-registry.js";
import { DEVICE_FIELDS, invalidField, READ_ONLY_FIELDS, validateDevice } from "../../registry/validate.js";
import { readBody } from "../body.js";
import { isDeviceId } from "../../registry/device-id.js";
import { sendError } from "../error-response.js";
import type { MigrationView } from "../../registry/migration.js";
import { WAVE_PATHS } from "./admin-waves.js";

/** Whether a device is connected now; null when this instance cannot tell. */
export interface PresenceLookup {
  isOnline(deviceId: string): Promise<boolean | null>;
}

export interface AdminRouteDeps {
  /** Bearer token of the admin API; undefined: there is no admin API (its paths answer 404 GW_NOT_FOUND). */
  token: string | undefined;
  registry: DeviceStore;
  logger: Logger;
  /** Fills `online` in a single-device answer; without it, `online` is null. */
  presence?: PresenceLookup;
  /** `GET /admin/migration`; without it, that path is 404. */
  migration?: Pick<MigrationView, "summary">;
  /** Largest JSON body accepted (413 GW_PAYLOAD_TOO_LARGE above it). */
  maxBodyBytes?: number;
  /** `/admin/waves` and below (admin-waves.ts), called once the request is authorized; without it, 404. */
  waves?: (req: Request, res: Response) => Promise<void>;
}

export const ADMIN_MAX_BODY_BYTES = 64 * 1024;

const COLLECTION = /^\/admin\/devices\/?$/;
const ITEM = /^\/admin\/devices\/([^/]+)$/;
const patchable = new Set<string>([...DEVICE_FIELDS, ...READ_ONLY_FIELDS]);

/**
 * The registry's admin API (README, "Admin API"), bearer-token protected: `GET /admin/devices`,
 * `GET|PUT|PATCH|DELETE /admin/devices/{id}`. Every path under /admin asks for the token first, so the
 * API's shape cannot be probed without it.
 */
export function adminRoutes(deps: AdminRouteDeps): Router {
  const router = express.Router();
  if (deps.token === undefined) return router; // off: /admin falls through to the 404 of unknown routes
  const expected = digest(deps.token);
  router.all(/^\/admin(\/.*)?$/, (req, res, next) => {
    handle(deps, expected, req, res).catch(next);
  });
  return router;
}

async function handle(deps: AdminRouteDeps, expected: Buffer, req: Request, res: Response): Promise<void> {
  res.setHeader("Cache-Control", "no-store");
  try {
    authorize(req, expected);
    if (deps.waves && WAVE_PATHS.test(req.path)) return await deps.waves(req, res);
    if (req.path === "/admin/migration" && deps.migration) {
      if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed(res, "GET, HEAD");
      res.json(await deps.migration.summary());
      return;
    }
    if (COLLECTION.test(req.path)) {
      if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed(res, "GET, HEAD");
      res.json(await deps.registry.list());
      return;
    }
    const item = ITEM.exec(req.path);
    if (!item) throw new GatewayError("GW_NOT_FOUND");
    const id = item[1] ?? "";
    if (!isDeviceId(id)) throw invalidField("id", "id in the path must be 1-64 of [A-Za-z0-9._-]");
    switch (req.method) {
      case "GET":
      case "HEAD":
        return await getOne(deps, id, res);
      case "PUT":
        return await putOne(deps, id, req, res);
      case "PATCH":
        return await patchOne(deps, id, req, res);
      case "DELETE":
        return await deleteOne(deps, id, res);
      default:
        throw notAllowed(res, "GET, HEAD, PUT, PATCH, DELETE");
    }
  } catch (err) {
    if (res.destroyed) return;
    if (!isGatewayError(err)) throw err;
    if (err.code === "GW_UNAUTHORIZED") res.setHeader("WWW-Authenticate", "Bearer");
    if (err.code === "GW_PAYLOAD_TOO_LARGE") res.setHeader("Connection", "close");
    sendError(res, err);
  }
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
  const record = validateDevice(await readJson(req, deps.maxBodyBytes), id);
  const { created, record: stored } = await deps.registry.upsert(record);
  audit(deps, created ? "created" : "replaced", stored);
  if (created) res.status(201).setHeader("Location", `/admin/devices/${id}`);
  res.json(stored);
}

/** Merges into the stored entry (`null` removes an optional field), then validates the result as a whole. */
async function patchOne(deps: AdminRouteDeps, id: string, req: Request, res: Response): Promise<void> {
  const patch = await readJson(req, deps.maxBodyBytes);
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
  // Object.fromEntries defines own properties only: a "__proto__" key could not reach a prototype.
  const merged = new Map<string, unknown>(Object.entries(existing));
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) merged.delete(key);
    else merged.set(key, value);
  }
  const record = validateDevice(Object.fromEntries(merged), id);
  const { record: stored } = await deps.registry.upsert(record);
  audit(deps, "patched", stored);
  res.json(stored);
}

async function deleteOne(deps: AdminRouteDeps, id: string, res: Response): Promise<void> {
  if (!(await deps.registry.delete(id))) throw unknownDevice(id);
  deps.logger.info({ event: "device-deleted", deviceId: id }, "registry entry deleted");
  res.status(204).end();
}

function audit(deps: AdminRouteDeps, change: "created" | "replaced" | "patched", record: DeviceRecord): void {
  deps.logger.info({ event: `device-${change}`, deviceId: record.id, transport: record.transport }, `registry entry ${change}`);
}

/** `Authorization: Bearer <token>`, compared as SHA-256 digests in constant time (no length leaks either). */
function authorize(req: Request, expected: Buffer): void {
  const given = /^Bearer +(\S+) *$/i.exec(req.get("authorization") ?? "")?.[1];
  if (given === undefined || !timingSafeEqual(digest(given), expected)) {
    throw new GatewayError("GW_UNAUTHORIZED", {
      message: given === undefined ? "admin API needs Authorization: Bearer <token>" : "wrong bearer token",
    });
  }
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}

async function readJson(req: Request, maxBytes = ADMIN_MAX_BODY_BYTES): Promise<unknown> {
  const raw = await readBody(req, maxBytes);
  if (raw.length === 0) throw invalidField("body", "body is empty: a JSON object is expected");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    throw invalidField("body", "body is not valid UTF-8");
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw invalidField("body", `body is not valid JSON: ${(err as Error).message}`);
  }
}

function notAllowed(res: Response, allow: string): GatewayError {
  res.setHeader("Allow", allow);
  return new GatewayError("GW_METHOD_NOT_ALLOWED", { message: `method not allowed here; allowed: ${allow}` });
}

function unknownDevice(id: string): GatewayError {
  return new GatewayError("GW_UNKNOWN_DEVICE", { message: `no device ${id} in the registry` });
}
