// Peaks of figures that only exist as "now" (a gauge, a process's RSS): sampled on a fixed period, one
// probe at a time (a slow scrape delays the next sample instead of piling up), the highest value kept.
import { setTimeout as delay } from "node:timers/promises";

export type Probe = () => Promise<Record<string, number | undefined>> | Record<string, number | undefined>;

export interface Peaks {
  /** Highest value seen per figure (figures never seen are absent). */
  max: Record<string, number>;
  samples: number;
  /** Probes that threw (e.g. a scrape that timed out while the gateway was saturated). */
  failures: number;
}

export class PeakSampler {
  private readonly peaks: Peaks = { max: {}, samples: 0, failures: 0 };
  private running = true;
  private stopped: Promise<Peaks> | undefined;
  private readonly loop: Promise<void>;

  constructor(
    private readonly probe: Probe,
    private readonly intervalMs: number,
  ) {
    this.loop = this.run();
  }

  /** Stops sampling after one last probe and returns the peaks (the same ones on every call). */
  stop(): Promise<Peaks> {
    this.stopped ??= (async () => {
      this.running = false;
      await this.loop;
      await this.sample();
      return this.peaks;
    })();
    return this.stopped;
  }

  private async run(): Promise<void> {
    while (this.running) {
      await this.sample();
      if (this.running) await delay(this.intervalMs);
    }
  }

  private async sample(): Promise<void> {
    try {
      const values = await this.probe();
      this.peaks.samples++;
      for (const [name, v] of Object.entries(values)) {
        if (v === undefined || Number.isNaN(v)) continue;
        this.peaks.max[name] = Math.max(this.peaks.max[name] ?? -Infinity, v);
      }
    } catch {
      this.peaks.failures++;
    }
  }
}
