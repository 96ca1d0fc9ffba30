import type { IncomingMessage, ServerResponse } from "node:http";
import type { HttpRequestMessage, HttpResponseMessage } from "../../adapters/xep0332/message.js";
import { GatewayError } from "../errors.js";
import type { DeviceLimiter } from "../limits/device-limiter.js";
import type { DeviceRoute } from "../registry/resolver.js";

export interface Exchanger {
  exchange(req: { deviceId: string; jid: string; message: HttpRequestMessage; timeoutMs: number }): Promise<HttpResponseMessage>;
}

export interface ProxyCall {
  resource: string;
  timeoutMs: number;
  requestId: string;
  /** The body, when it was read already (fallback, shadow); else it streams from the request. */
  body?: Buffer;
  /** Sees the device's response while it streams to the client (shadow mode). */
  observe?: (response: IncomingMessage) => void;
}

/** The HTTP pass-through (gateway/proxy): streams a client request to a device's legacy address and back. */
export interface PassThrough {
  forward(req: IncomingMessage, res: ServerResponse, target: Omit<ProxyCall, "body"> & { httpTarget: string }, bufferedBody?: Buffer): Promise<void>;
}

/**
 * One request to one device, now, over its transport, holding one of the device's in-flight slots (429
 * when it has none left). Whether the device is connected is not decided from the presence kept in Redis:
 * that record goes stale (announcements bounce while the component reconnects), whereas the XMPP server
 * answers an IQ to a device without a session at once, with authority (503).
 */
export class DeviceDelivery {
  constructor(private readonly deps: { limiter: DeviceLimiter; xmpp: Exchanger; http: PassThrough }) {}

  /** Over XMPP (XEP-0332), with the body read beforehand. */
  deliver(route: DeviceRoute, message: HttpRequestMessage, timeoutMs: number): Promise<HttpResponseMessage> {
    if (route.transport !== "xmpp") return Promise.reject(new GatewayError("GW_INTERNAL", { message: `deliver() is the XMPP path, not ${route.transport}` }));
    return this.withSlot(route, timeoutMs, () => this.deps.xmpp.exchange({ deviceId: route.deviceId, jid: route.jid, message, timeoutMs }));
  }

  /** Over HTTP to the device's legacy address from the registry (never from the request), streamed. */
  proxy(route: DeviceRoute, req: IncomingMessage, res: ServerResponse, call: ProxyCall): Promise<void> {
    const httpTarget = route.httpTarget;
    if (!httpTarget) return Promise.reject(new GatewayError("GW_UPSTREAM_UNREACHABLE", { message: "device has no httpTarget in the registry" }));
    const { body, ...target } = call;
    return this.withSlot(route, call.timeoutMs, () => this.deps.http.forward(req, res, { httpTarget, ...target }, body));
  }

  /**
   * A promise chain rather than an async function: with thousands of requests held at once, every suspended
   * async frame on the way down is memory held per request.
   */
  private withSlot<T>(route: DeviceRoute, timeoutMs: number, work: () => Promise<T>): Promise<T> {
    return this.deps.limiter.acquire(route.deviceId, route.maxInFlight, timeoutMs).then((release) => {
      try {
        return work().finally(release);
      } catch (err) {
        release();
        throw err;
      }
    });
  }
}
