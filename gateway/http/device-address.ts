import { GatewayError } from "../errors.js";
import { canonicalDeviceId, DEVICE_ID_RULE } from "../registry/device-id.js";

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
  if (deviceId === undefined)
    throw new GatewayError("GW_BAD_DEVICE_ID", {
      message: `device id ${JSON.stringify(id.slice(0, 80))} is not allowed: ${DEVICE_ID_RULE}`,
    });
  return { deviceId, resource: rest + query };
}
