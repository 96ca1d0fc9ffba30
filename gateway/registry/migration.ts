import { TRANSPORTS, type DeviceRegistry, type Transport } from "./device.js";

export interface MigrationSummary {
  devices: { registered: number; byTransport: Record<Transport, number> };
  /** Devices whose agent's presence is current (registered or not). */
  online: number;
  /** Shadow comparisons that differed, per device (only devices with at least one). */
  shadowMismatches: Record<string, number>;
}

/** How many devices' agents have a current presence (the presence store answers it). */
export interface OnlineCount {
  countOnline(): Promise<number>;
}

/** Shadow comparisons that differed, per device (the shadow delivery's record answers it). */
export interface ShadowMismatches {
  mismatchesByDevice(): Promise<Record<string, number>>;
}

/**
 * Where a fleet's migration stands (`GET /admin/migration`); the same figures are metrics. Presence and
 * shadow comparisons are layers above the registry: they come in through the two small interfaces above.
 */
export class MigrationView {
  constructor(private readonly deps: { registry: Pick<DeviceRegistry, "list">; presence: OnlineCount; shadow: ShadowMismatches }) {}

  async byTransport(): Promise<Record<Transport, number>> {
    const counts = Object.fromEntries(TRANSPORTS.map((t) => [t, 0])) as Record<Transport, number>;
    for (const d of await this.deps.registry.list()) counts[d.transport]++;
    return counts;
  }

  async summary(): Promise<MigrationSummary> {
    const [byTransport, online, shadowMismatches] = await Promise.all([
      this.byTransport(),
      this.deps.presence.countOnline(),
      this.deps.shadow.mismatchesByDevice(),
    ]);
    const registered = Object.values(byTransport).reduce((a, b) => a + b, 0);
    return { devices: { registered, byTransport }, online, shadowMismatches };
  }
}
