/**
 * A device's registry entry (README, "Admin API"): how the gateway reaches it. Stored in Redis, shared by every
 * instance: a change applies at once on the instance that made it, and on the others once its notice reaches
 * them, within GATEWAY_REGISTRY_CACHE_MS in any case (cached-registry.ts).
 */
/** `shadow`: safe requests go both ways, the HTTP answer is returned and the two are compared. */
export const TRANSPORTS = ["xmpp", "http", "shadow"] as const;
export type Transport = (typeof TRANSPORTS)[number];

export interface DeviceRecord {
  id: string;
  transport: Transport;
  /** Full JID of the device agent; absent: from DEVICE_JID_TEMPLATE. */
  jid?: string;
  /** Legacy base URL of the device's own HTTP server (http transport, and fallback). */
  httpTarget?: string;
  /** host:port legacy clients used for this device (forward-proxy addressing). */
  legacyAddress?: string;
  /**
   * The device's agent may set `legacyAddress` by announcing it in its presence (and move it later). Absent:
   * only an operator sets it; an announcement never takes an address for a device without this flag.
   */
  acceptAnnouncedAddress?: boolean;
  /** Body codec on the XMPP path; only XEP-0332 today. */
  codec?: "xep0332";
  /** Deadline of one exchange with this device; absent: GATEWAY_REQUEST_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Requests in flight at once, across all instances; absent: GATEWAY_DEVICE_MAX_IN_FLIGHT. */
  maxInFlight?: number;
  /** An XMPP device that is offline is reached at its `httpTarget` instead (during a migration). */
  fallback?: "http";
  /** ISO time of the last change, set by the registry. */
  updatedAt?: string;
}

/** The registry's storage: one implementation on Redis; every method may throw GW_STORE_UNAVAILABLE. */
export interface DeviceRegistry {
  get(id: string): Promise<DeviceRecord | undefined>;
  /** Creates or replaces; true when it was created. */
  put(record: DeviceRecord): Promise<boolean>;
  /** Deletes; false when there was nothing to delete. */
  delete(id: string): Promise<boolean>;
  /** All entries, ordered by id. */
  list(): Promise<DeviceRecord[]>;
}
