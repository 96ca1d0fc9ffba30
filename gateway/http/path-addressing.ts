import type { Request } from "express";
import { parseDevicePath, type DeviceAddress } from "./device-address.js";

/** Path addressing only (`/devices/{id}/{rest}`, DESIGN.md §2.1): the default when no other mode is configured. */
export class PathAddressing {
  async address(req: Request): Promise<DeviceAddress | undefined> {
    return req.originalUrl === "/devices" || req.originalUrl.startsWith("/devices/") || req.originalUrl.startsWith("/devices?")
      ? parseDevicePath(req.originalUrl)
      : undefined;
  }
}
