import { GatewayError } from "../errors.js";

/** DESIGN.md §2: 1 to 64 of [A-Za-z0-9._-]. */
const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * DESIGN.md §2's rule, less "." and "..": these are dot-segments (RFC 3986 §3.3) that a client library or a
 * proxy on the way may collapse, so a device by that name could be reached by accident, or not at all.
 */
export function isDeviceId(id: string): boolean {
  return DEVICE_ID.test(id) && id !== "." && id !== "..";
}

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
  if (!isDeviceId(id)) throw new GatewayError("GW_BAD_DEVICE_ID", { message: `device id ${JSON.stringify(id.slice(0, 80))} is not allowed: 1-64 of [A-Za-z0-9._-]` });
  return { deviceId: id, resource: rest + query };
}
