import type { HttpRequestMessage, HttpResponseMessage } from "../../adapters/xep0332/message.js";
import { GatewayError } from "../errors.js";
import type { DeviceLimiter } from "../limits/device-limiter.js";
import type { DeviceRoute } from "../registry/resolver.js";

export interface Exchanger {
  exchange(req: { deviceId: string; jid: string; message: HttpRequestMessage; timeoutMs: number }): Promise<HttpResponseMessage>;
}

/**
 * One request to one device, now: refused at once when the device already has its fill of requests in
 * flight (429), else carried over its transport. Whether the device is connected is not decided from the
 * presence kept in Redis: that record goes stale (announcements bounce while the component reconnects),
 * whereas the XMPP server answers an IQ to a device without a session at once, with authority (503).
 */
export class DeviceDelivery {
  constructor(private readonly deps: { limiter: DeviceLimiter; xmpp: Exchanger }) {}

  async deliver(route: DeviceRoute, message: HttpRequestMessage, timeoutMs: number): Promise<HttpResponseMessage> {
    if (route.transport !== "xmpp") {
      throw new GatewayError("GW_UPSTREAM_UNREACHABLE", { message: `transport ${route.transport} is not available in this gateway version` });
    }
    const release = await this.deps.limiter.acquire(route.deviceId, route.maxInFlight, timeoutMs);
    try {
      return await this.deps.xmpp.exchange({ deviceId: route.deviceId, jid: route.jid, message, timeoutMs });
    } finally {
      release();
    }
  }
}
