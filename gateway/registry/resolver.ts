import { GatewayError } from "../errors.js";
import { canonicalOrAsGiven } from "./device-id.js";
import type { DeviceRecord, DeviceRegistry, Transport } from "./device.js";

/** Where and how a device is reached, every optional setting of its entry filled in from configuration. */
export interface DeviceRoute {
  deviceId: string;
  transport: Transport;
  /** Full JID of the device agent (the entry's, else DEVICE_JID_TEMPLATE's), whatever the transport. */
  jid: string;
  /** Legacy base URL; always set when transport is `http`. */
  httpTarget?: string;
  /** `http`: an offline XMPP device is reached at httpTarget instead. */
  fallback?: "http";
  timeoutMs: number;
  maxInFlight: number;
}

export interface DeviceResolver {
  resolve(deviceId: string): Promise<DeviceRoute>;
}

export interface ResolverDefaults {
  /** Devices without an entry: `xmpp` at the JID template, or `none` (404 GW_UNKNOWN_DEVICE). */
  defaultTransport: "xmpp" | "none";
  jidTemplate: string;
  timeoutMs: number;
  maxInFlight: number;
}

/**
 * The registry entry when there is one, else the default rule (README, "Admin API"). The entry comes from
 * the instance's registry cache (cached-registry.ts), which bounds how late a change may apply.
 */
export class RegistryResolver implements DeviceResolver {
  /**
   * The route made of each entry the registry answered: the registry cache answers with the same entry
   * object until it changes, so a device's requests share one route instead of building it (and its JID)
   * every time. Weak: a route goes with its entry.
   */
  private readonly routes = new WeakMap<DeviceRecord, DeviceRoute>();

  constructor(
    private readonly registry: Pick<DeviceRegistry, "get">,
    private readonly defaults: ResolverDefaults,
  ) {}

  /** `id` in any case: the route's deviceId is the canonical one, which every per-device key is made from. */
  async resolve(id: string): Promise<DeviceRoute> {
    const d = this.defaults;
    const deviceId = canonicalOrAsGiven(id);
    const record = await this.registry.get(deviceId);
    if (record) {
      let route = this.routes.get(record);
      if (route === undefined || route.deviceId !== deviceId) {
        route = this.routeOf(deviceId, record);
        this.routes.set(record, route);
      }
      return route;
    }
    if (d.defaultTransport === "none") throw new GatewayError("GW_UNKNOWN_DEVICE", { message: `no device ${deviceId} in the registry` });
    return {
      deviceId,
      transport: "xmpp",
      jid: deviceJid({ id: deviceId }, d.jidTemplate),
      timeoutMs: d.timeoutMs,
      maxInFlight: d.maxInFlight,
    };
  }

  private routeOf(deviceId: string, record: DeviceRecord): DeviceRoute {
    const d = this.defaults;
    return {
      deviceId,
      transport: record.transport,
      jid: deviceJid({ id: deviceId, jid: record.jid }, d.jidTemplate),
      ...(record.httpTarget !== undefined ? { httpTarget: record.httpTarget } : {}),
      ...(record.fallback !== undefined ? { fallback: record.fallback } : {}),
      timeoutMs: record.timeoutMs ?? d.timeoutMs,
      maxInFlight: record.maxInFlight ?? d.maxInFlight,
    };
  }
}

/** The JID of a device's agent: its entry's, else DEVICE_JID_TEMPLATE's (`{id}` the canonical id). */
export function deviceJid(record: { id: string; jid?: string | undefined }, jidTemplate: string): string {
  return record.jid ?? jidTemplate.replaceAll("{id}", canonicalOrAsGiven(record.id));
}
