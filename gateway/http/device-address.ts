import { GatewayError } from "../errors.js";

/** 1 to 64 of [A-Za-z0-9._-]. */
const DEVICE_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The device-id rule, the one place it is written (README "Device ids"): 1-64 of [A-Za-z0-9._-], less "."
 * and "..", matched without regard to case. Answers the canonical spelling, in lower case, or undefined
 * when `id` is not a device id. Case-insensitive because the id is the local part of the device's JID,
 * which XMPP compares case-insensitively (RFC 7622 §3.3, UsernameCaseMapped), and a DNS label under the
 * Host suffix (RFC 4343): `DEV-17` and `dev-17` reach the same agent, so they must share one registry
 * entry, one in-flight limit and one idempotency space. Every per-device key is made from this spelling.
 * "." and ".." are dot-segments (RFC 3986 §3.3) that a client library or a proxy on the way may collapse,
 * so a device by that name could be reached by accident, or not at all.
 */
export function canonicalDeviceId(id: string): string | undefined {
  return DEVICE_ID.test(id) && id !== "." && id !== ".." ? id.toLowerCase() : undefined;
}

/** Whether `id` is a device id in any case (canonicalDeviceId). */
export function isDeviceId(id: string): boolean {
  return canonicalDeviceId(id) !== undefined;
}

export interface DeviceAddress {
  deviceId: string;
  /** Path and query the device sees, exactly as the client sent them (no decoding, no normalizing). */
  resource: string;
}

/**
 * Path addressing: `/devices/{deviceId}/{rest}?q` → device `{deviceId}` (canonical: lower case), resource
 * `/{rest}?q`. Parsed from the raw request target so that the bytes the device sees are the bytes the client sent.
 */
export function parseDevicePath(rawUrl: string): DeviceAddress {
  const match = /^\/devices\/([^/?]*)(\/[^?]*)?(\?.*)?$/.exec(rawUrl);
  if (!match) throw new GatewayError("GW_BAD_DEVICE_ID");
  const [, id = "", rest = "/", query = ""] = match;
  const deviceId = canonicalDeviceId(id);
  if (deviceId === undefined) throw new GatewayError("GW_BAD_DEVICE_ID", { message: `device id ${JSON.stringify(id.slice(0, 80))} is not allowed: 1-64 of [A-Za-z0-9._-]` });
  return { deviceId, resource: rest + query };
}
