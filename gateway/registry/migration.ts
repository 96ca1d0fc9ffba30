import type { Transport } from "./device.js";

export interface MigrationSummary {
  devices: { registered: number; byTransport: Record<Transport, number> };
  /** Devices whose agent's presence is current (registered or not). */
  online: number;
  /** Shadow comparisons that differed, per device (only devices with at least one). */
  shadowMismatches: Record<string, number>;
  /** Migration waves: those being watched, and how many ended each way (when the view has waves). */
  waves?: WavesSummary;
}

/** Migration waves as the summary shows them (the waves' store answers it). */
export interface WavesSummary {
  watching: unknown[];
  completed: number;
  rolledBack: number;
}

/** Registered devices by transport (the registry's counts answer it: registry/transport-counts.ts). */
export interface TransportCountsSource {
  read(): Promise<Record<Transport, number>>;
}

/** How many devices' agents have a current presence (the presence store answers it). */
export interface OnlineCount {
  countOnline(): Promise<number>;
}

/** Shadow comparisons that differed, per device (the shadow delivery's record answers it). */
export interface ShadowMismatches {
  mismatchesByDevice(): Promise<Record<string, number>>;
}

/** The waves part of the summary (the migration waves' store answers it). */
export interface WavesSource {
  summary(): Promise<WavesSummary>;
}

/**
 * Where a fleet's migration stands (`GET /admin/migration`); the same figures are metrics. Presence and
 * shadow comparisons, and migration waves, are layers above the registry: they come in through the small
 * interfaces above.
 */
export class MigrationView {
  constructor(
    private readonly deps: { counts: TransportCountsSource; presence: OnlineCount; shadow: ShadowMismatches; waves?: WavesSource },
  ) {}

  /** Registered devices by transport: kept by the registry's writes, never the registry read whole. */
  byTransport(): Promise<Record<Transport, number>> {
    return this.deps.counts.read();
  }

  async summary(): Promise<MigrationSummary> {
    const [byTransport, online, shadowMismatches, waves] = await Promise.all([
      this.byTransport(),
      this.deps.presence.countOnline(),
      this.deps.shadow.mismatchesByDevice(),
      this.deps.waves?.summary(),
    ]);
    const registered = Object.values(byTransport).reduce((a, b) => a + b, 0);
    return { devices: { registered, byTransport }, online, shadowMismatches, ...(waves ? { waves } : {}) };
  }
}
