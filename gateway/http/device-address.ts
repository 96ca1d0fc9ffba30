import { GatewayError } from "../errors.js";

/** DESIGN.md §2: 1 to 64 of [A-Za-z0-9._-]. */
export const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;

export interface DeviceAddress {
  deviceId: string;
  /** Path and query the device sees, exactly as the client sent them (no decoding, no normalizing). */
  resource: string;
}

/**
 * Path addressing: `/devices/{deviceId}/{rest}?q` → device `{deviceId}`, resource `/{rest}?q`. Parsed from
 * the raw request target so that the bytes the device sees are the bytes the client sent.
 */
export function parseDevicePath(rawUrl: string): DeviceAddress {
  const match = /^\/devices\/([^/?]*)(\/[^?]*)?(\?.*)?$/.exec(rawUrl);
  if (!match) throw new GatewayError("GW_BAD_DEVICE_ID");
  const [, id = "", rest = "/", query = ""] = match;
  if (!DEVICE_ID.test(id)) throw new GatewayError("GW_BAD_DEVICE_ID", { message: `device id ${JSON.stringify(id.slice(0, 80))} is not allowed: 1-64 of [A-Za-z0-9._-]` });
  return { deviceId: id, resource: rest + query };
}
