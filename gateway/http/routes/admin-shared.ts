import type { Request, Response } from "express";
import { GatewayError } from "../../errors.js";
import type { Logger } from "../../log.js";
import type { DeviceRecord } from "../../registry/device.js";
import type { MigrationView } from "../../registry/migration.js";
import type { DeviceStore } from "../../registry/redis-registry.js";
import { invalidField } from "../../registry/validate.js";
import type { WaveController } from "../../waves/controller.js";
import { readBody } from "../body.js";

/** What the admin API's route modules share: their dependencies and the helpers of their answers. */

/** Whether a device is connected now; null when this instance cannot tell. */
export interface PresenceLookup {
  isOnline(deviceId: string): Promise<boolean | null>;
  /**
   * The listing's `online` filter: whether each device's agent has a current presence (unknown counts as
   * not), asked for many at once. Absent: isOnline() per device.
   */
  areOnline?(records: readonly DeviceRecord[]): Promise<boolean[]>;
}

export interface AdminRouteDeps {
  /** Bearer token of the admin API; undefined: there is no admin API (its paths answer 404 GW_NOT_FOUND). */
  token: string | undefined;
  registry: DeviceStore;
  logger: Logger;
  /** Fills `online` in a single-device answer and answers the `online` filter; without it, `online` is null and the filter refused. */
  presence?: PresenceLookup;
  /** `GET /admin/migration`; without it, that path is 404. */
  migration?: Pick<MigrationView, "summary">;
  /** Largest JSON body of one device accepted (413 GW_PAYLOAD_TOO_LARGE above it). */
  maxBodyBytes?: number;
  /** Largest body of a bulk move accepted (it may name 1000 ids of 64 characters). */
  bulkMaxBodyBytes?: number;
  /** Migration waves (`/admin/waves`, admin-waves.ts); without them, those paths are 404. */
  waves?: Pick<WaveController, "create" | "view" | "list" | "rollBackByHand">;
}

/**
 * One family of admin paths. Answers false when the path is not one of its own (the next family is asked);
 * otherwise it answers the request, or throws a GatewayError for the admin router to send.
 */
export type AdminRoute = (req: Request, res: Response) => Promise<boolean>;

export const ADMIN_MAX_BODY_BYTES = 64 * 1024;
export const BULK_MAX_BODY_BYTES = 256 * 1024;

/** The body as JSON: 413 above `maxBytes`, 400 GW_INVALID_FIELD `body` when empty, not UTF-8 or not JSON. */
export async function readJson(req: Request, maxBytes: number): Promise<unknown> {
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

/** 405, with the `Allow` header set. */
export function notAllowed(res: Response, allow: string): GatewayError {
  res.setHeader("Allow", allow);
  return new GatewayError("GW_METHOD_NOT_ALLOWED", { message: `method not allowed here; allowed: ${allow}` });
}

export function unknownDevice(id: string): GatewayError {
  return new GatewayError("GW_UNKNOWN_DEVICE", { message: `no device ${id} in the registry` });
}

/** The log line of every write of an entry (the audit trail of the admin API). */
export function audit(
  logger: Logger,
  change: "created" | "replaced" | "patched",
  record: DeviceRecord,
  extra: Record<string, unknown> = {},
): void {
  logger.info({ event: `device-${change}`, deviceId: record.id, transport: record.transport, ...extra }, `registry entry ${change}`);
}
