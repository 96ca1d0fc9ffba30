import type { WaveTotals } from "./wave.js";

function zero(): WaveTotals {
  return { waveRequests: 0, waveErrors: 0, baseRequests: 0, baseErrors: 0 };
}

/**
 * This instance's counts for the waves it watches, told of each device request's outcome by the access log
 * (http/access-log.ts, DeviceOutcomes), added to the waves' counts in Redis by the evaluator
 * (controller.ts) about once a second. On the request path: with no wave watched, observe() is one boolean
 * test; with waves watched, one Map lookup (and, for a baseline request, one increment per watched wave).
 *
 * What counts (docs/admin-api.md): an answer of 500 or more is an error, one below 400 a success; 4xx
 * answers, clients that hung up (499) and requests refused before any transport are not counted. A wave
 * request is one to a device of a watched wave; a baseline request one carried over `http` to a device in
 * no watched wave.
 */
export class WaveCounter {
  private active = false;
  /** Device id → the counts of its wave. */
  private readonly byDevice = new Map<string, WaveTotals>();
  private readonly byWave = new Map<string, { counts: WaveTotals; devices: readonly string[] }>();

  observe(deviceId: string, transport: string, status: number): void {
    if (!this.active) return;
    if (transport === "none" || (status >= 400 && status < 500)) return;
    const error = status >= 500;
    const counts = this.byDevice.get(deviceId);
    if (counts !== undefined) {
      counts.waveRequests++;
      if (error) counts.waveErrors++;
      return;
    }
    if (transport !== "http") return;
    for (const wave of this.byWave.values()) {
      wave.counts.baseRequests++;
      if (error) wave.counts.baseErrors++;
    }
  }

  /** Starts counting for a wave (a device already in another watched wave stays counted there). */
  watch(waveId: string, deviceIds: readonly string[]): void {
    if (this.byWave.has(waveId)) return;
    const counts = zero();
    this.byWave.set(waveId, { counts, devices: deviceIds });
    for (const id of deviceIds) if (!this.byDevice.has(id)) this.byDevice.set(id, counts);
    this.active = true;
  }

  /** Stops counting for a wave; what it counted and did not hand over is dropped. */
  unwatch(waveId: string): void {
    const wave = this.byWave.get(waveId);
    if (!wave) return;
    this.byWave.delete(waveId);
    for (const id of wave.devices) if (this.byDevice.get(id) === wave.counts) this.byDevice.delete(id);
    this.active = this.byWave.size > 0;
  }

  watching(waveId: string): boolean {
    return this.byWave.has(waveId);
  }

  waveIds(): string[] {
    return [...this.byWave.keys()];
  }

  /** The watched wave a device belongs to, if any. */
  waveOf(deviceId: string): string | undefined {
    const counts = this.byDevice.get(deviceId);
    if (counts === undefined) return undefined;
    for (const [id, wave] of this.byWave) if (wave.counts === counts) return id;
    return undefined;
  }

  /** Hands over what was counted since the last take (zeroed here). */
  take(waveId: string): WaveTotals {
    const wave = this.byWave.get(waveId);
    if (!wave) return zero();
    const taken = { ...wave.counts };
    Object.assign(wave.counts, zero());
    return taken;
  }

  /** Puts back counts whose hand-over failed (Redis unreachable), to go with the next one. */
  putBack(waveId: string, counts: WaveTotals): void {
    const wave = this.byWave.get(waveId);
    if (!wave) return;
    wave.counts.waveRequests += counts.waveRequests;
    wave.counts.waveErrors += counts.waveErrors;
    wave.counts.baseRequests += counts.baseRequests;
    wave.counts.baseErrors += counts.baseErrors;
  }
}
