import type { HttpRequestMessage, HttpResponseMessage } from "../../adapters/xep0332/message.js";
import { GatewayError } from "../errors.js";
import type { DeviceLimiter } from "../limits/device-limiter.js";
import type { PresenceStore } from "../presence/presence-store.js";
import type { DeviceRoute } from "../registry/resolver.js";

export interface Exchanger {
  exchange(req: { deviceId: string; jid: string; message: HttpRequestMessage; timeoutMs: number }): Promise<HttpResponseMessage>;
}

/**
 * One request to one device, now: refused at once when the device is known offline (503 with Retry-After)
 * or already has its fill of requests in flight (429), else carried over its transport.
 */
export class DeviceDelivery {
  constructor(private readonly deps: { presence: PresenceStore; limiter: DeviceLimiter; xmpp: Exchanger; offlineRetryAfterS: number }) {}

  async deliver(route: DeviceRoute, message: HttpRequestMessage, timeoutMs: number): Promise<HttpResponseMessage> {
    if (route.transport !== "xmpp") {
      throw new GatewayError("GW_UPSTREAM_UNREACHABLE", { message: `transport ${route.transport} is not available in this gateway version` });
    }
    if (await this.isOffline(route)) {
      throw new GatewayError("GW_DEVICE_OFFLINE", { message: "device is offline: its agent signed off", retryAfterS: this.deps.offlineRetryAfterS });
    }
    const release = await this.deps.limiter.acquire(route.deviceId, route.maxInFlight, timeoutMs);
    try {
      return await this.deps.xmpp.exchange({ deviceId: route.deviceId, jid: route.jid, message, timeoutMs });
    } finally {
      release();
    }
  }

  /** Only a device that said goodbye counts as offline; with no record, the exchange finds out (Prosody bounces at once). */
  async isOffline(route: DeviceRoute): Promise<boolean> {
    return (await this.deps.presence.state(route.jid)) === "offline";
  }
}
