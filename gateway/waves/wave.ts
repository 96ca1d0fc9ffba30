/**
 * A migration wave as the admin API shows it (docs/admin-api.md, "Migration waves"): a share of the devices on
 * HTTP moved to XMPP, watched against the devices that stayed on HTTP, and moved back when it does worse.
 */
export type WaveState = "watching" | "completed" | "rolled-back";

export type RollbackReason = "threshold" | "manual";

/** Requests counted on one side of a wave's comparison, and their share of errors (0 with no request). */
export interface SideCounts {
  requests: number;
  errors: number;
  errorRate: number;
}

export interface WaveRollback {
  at: string;
  reason: RollbackReason;
  detail: string;
  /** Devices put back on the transport they had before the wave. */
  restored: number;
  /** Devices left as they were: changed since the wave moved them (no longer on its `to`), or gone. */
  skipped: string[];
}

export interface WaveView {
  id: string;
  state: WaveState;
  createdAt: string;
  watchUntil: string;
  to: "xmpp";
  devices: number;
  windowMs: number;
  maxErrorRateIncrease: number;
  minRequests: number;
  observed: { wave: SideCounts; baseline: SideCounts };
  rollback: WaveRollback | null;
  endedAt: string | null;
  /** Only in the answer about one wave (`GET /admin/waves/{id}`, and the creation's). */
  deviceIds?: string[];
}

/** The raw counts of a wave as kept in Redis: wave requests and errors, baseline requests and errors. */
export interface WaveTotals {
  waveRequests: number;
  waveErrors: number;
  baseRequests: number;
  baseErrors: number;
}

/** What a wave is judged by (its settings). */
export interface WaveLimits {
  minRequests: number;
  maxErrorRateIncrease: number;
  /** When the window ends (epoch ms). */
  watchUntilMs: number;
}

/** A wave's device and the transport it had before the wave moved it. */
export type WaveDevice = readonly [id: string, before: "http" | "shadow"];

/** Every wave moves its devices here (the only target a migration has). */
export const WAVE_TARGET = "xmpp";
