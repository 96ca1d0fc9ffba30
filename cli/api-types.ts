// The admin API's bodies as the client reads and sends them (README "Admin API", docs/admin-api.md). The
// client keeps its own copy of the wire contract rather than the gateway's internal types: it talks to a
// gateway over HTTP, maybe of another version, and must not need the gateway's code to do so.

/** A registry entry as the API answers it (`online` only on a single-device answer). */
export interface DeviceEntry {
  id: string;
  transport: string;
  jid?: string;
  httpTarget?: string;
  legacyAddress?: string;
  acceptAnnouncedAddress?: boolean;
  codec?: string;
  timeoutMs?: number;
  maxInFlight?: number;
  fallback?: string;
  updatedAt?: string;
  online?: boolean | null;
}

/** The listing's filter (`transport` may name several, comma-separated). */
export interface DeviceFilter {
  transport?: string;
  online?: boolean;
  prefix?: string;
}

export interface DevicePage {
  devices: DeviceEntry[];
  nextCursor: string | null;
  remaining: number;
}

export interface BulkRequest {
  ids?: string[];
  filter?: DeviceFilter;
  set: Record<string, unknown>;
  dryRun?: boolean;
  limit?: number;
  cursor?: string | null;
}

export interface ApiErrorBody {
  code: string;
  message: string;
  field?: string;
}

export interface BulkResult {
  id: string;
  outcome: "changed" | "unchanged" | "failed";
  transport?: { from: string; to: string };
  error?: ApiErrorBody;
}

export interface BulkAnswer {
  dryRun: boolean;
  matched: number;
  changed: number;
  unchanged: number;
  failed: number;
  results: BulkResult[];
  nextCursor: string | null;
  remaining: number;
}

export interface WaveRequest {
  ids?: string[];
  percent?: number;
  filter?: DeviceFilter;
  windowMs?: number;
  maxErrorRateIncrease?: number;
  minRequests?: number;
  dryRun?: boolean;
}

export interface WaveCounts {
  requests: number;
  errors: number;
  errorRate: number;
}

export interface WaveRollback {
  at: string;
  reason: string;
  detail?: string;
  restored?: number;
  skipped?: string[];
}

export interface Wave {
  id: string;
  state: string;
  createdAt?: string;
  watchUntil?: string;
  to?: string;
  devices?: number;
  windowMs?: number;
  maxErrorRateIncrease?: number;
  minRequests?: number;
  observed?: { wave: WaveCounts; baseline: WaveCounts };
  rollback?: WaveRollback | null;
  endedAt?: string | null;
  /** On `GET /admin/waves/{id}` only. */
  deviceIds?: string[];
  /** A dry run's answer (no wave is made): which devices would move. */
  dryRun?: boolean;
}

export interface WaveList {
  waves: Wave[];
}

export interface MigrationSummary {
  devices: { registered: number; byTransport: Record<string, number> };
  online: number;
  shadowMismatches: Record<string, number>;
  waves?: { watching: Wave[]; completed: number; rolledBack: number };
}
