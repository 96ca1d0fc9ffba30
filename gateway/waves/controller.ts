import { randomUUID } from "node:crypto";
import { GatewayError } from "../errors.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import type { DeviceRecord } from "../registry/device.js";
import { judge } from "./judge.js";
import { moveDevices, restoreDevices, type WaveRegistry } from "./moves.js";
import type { WaveCounter } from "./outcome-counter.js";
import type { WaveRequest } from "./request.js";
import { selectDevices } from "./select.js";
import { limitsOf, type WaveStore } from "./wave-store.js";
import { WAVE_TARGET, type RollbackReason, type WaveDevice, type WaveLimits, type WaveTotals, type WaveView } from "./wave.js";

/** How long a rollback's claim holds without being renewed (it is renewed after every batch of devices). */
const CLAIM_LEASE_MS = 30_000;

/** A dry run's answer: the devices a wave would move, nothing changed. */
export interface WavePlan {
  dryRun: true;
  to: typeof WAVE_TARGET;
  devices: number;
  deviceIds: string[];
  windowMs: number;
  maxErrorRateIncrease: number;
  minRequests: number;
}

export interface WaveControllerDeps {
  store: WaveStore;
  registry: WaveRegistry;
  counter: WaveCounter;
  metrics: Pick<Metrics, "migrationWaveRollbacks" | "migrationWaveRequests">;
  logger: Logger;
  /** Whether each device's agent has a current presence (the `online` filter; unknown counts as not). */
  areOnline(records: readonly DeviceRecord[]): Promise<boolean[]>;
  instanceId: string;
  /** GATEWAY_WAVE_CHECK_MS: how often this instance hands over its counts and judges the watched waves. */
  checkMs: number;
  now?: () => number;
}

/**
 * Migration waves on this instance (docs/admin-api.md, "Migration waves"): creates them, and every
 * GATEWAY_WAVE_CHECK_MS hands this instance's counts to each watched wave in Redis and judges it with the
 * counts of every instance (judge.ts). A breach rolls the wave back, the end of its window completes it;
 * either is a compare-and-set in Redis (wave-store.ts), so exactly one instance acts.
 */
export class WaveController implements Lifecycle {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private ticking: Promise<void> = Promise.resolve();
  /** Rollbacks this instance runs, detached from the tick that decided them. */
  private readonly rollbacks = new Set<Promise<unknown>>();
  /** The settings of the waves this instance watches. */
  private readonly limits = new Map<string, WaveLimits>();
  private readonly now: () => number;
  private readonly log: Logger;

  constructor(private readonly deps: WaveControllerDeps) {
    this.now = deps.now ?? (() => Date.now());
    this.log = deps.logger.child({ component: "waves" });
  }

  // eslint-disable-next-line @typescript-eslint/require-await
  async start(): Promise<void> {
    this.stopped = false;
    this.schedule();
  }

  /** Stops judging; hands over what was counted, and waits for rollbacks under way (bounded by Redis's timeouts). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    await Promise.allSettled([...this.rollbacks]);
    await Promise.allSettled(this.deps.counter.waveIds().map((id) => this.flush(id)));
  }

  private schedule(): void {
    if (this.stopped) return;
    // Not keeping the process alive: a gateway that stops never waits for the next check.
    this.timer = setTimeout(() => {
      this.ticking = this.tick()
        .catch((err: unknown) => this.log.warn({ event: "wave-check-failed", err: (err as Error).message }, "waves not checked"))
        .finally(() => this.schedule());
    }, this.deps.checkMs).unref();
  }

  /** One check: learn the waves watched now, hand over counts, judge each. */
  async tick(): Promise<void> {
    const { store, counter } = this.deps;
    // Only waves watched before the read can be missing from it: one created here meanwhile is not.
    const known = counter.waveIds();
    const ids = new Set(await store.watchingIds());
    for (const id of known) if (!ids.has(id)) this.forget(id);
    for (const id of ids) {
      // One wave that cannot be checked (Redis failing on its slot) does not hold up the others.
      await this.learnAndCheck(id).catch((err: unknown) =>
        this.log.warn({ event: "wave-check-failed", wave: id, err: (err as Error).message }, "wave not checked"),
      );
    }
  }

  private async learnAndCheck(id: string): Promise<void> {
    const { store, counter } = this.deps;
    if (!counter.watching(id)) {
      const wave = await store.get(id);
      if (wave?.state !== "watching") {
        // Ended and left in the set by an instance that stopped between the two steps (or gone): the set
        // is written after the wave, so a wave in it always has its record.
        await store.unwatch(id);
        return;
      }
      this.watch(wave, await store.devices(id));
    }
    await this.check(id);
  }

  private watch(wave: WaveView, devices: readonly WaveDevice[]): void {
    this.limits.set(wave.id, limitsOf(wave));
    this.deps.counter.watch(
      wave.id,
      devices.map(([id]) => id),
    );
  }

  private forget(id: string): void {
    this.deps.counter.unwatch(id);
    this.limits.delete(id);
    const gauge = this.deps.metrics.migrationWaveRequests;
    for (const side of ["wave", "baseline"]) for (const outcome of ["ok", "error"]) gauge.remove({ wave: id, side, outcome });
  }

  /** Hands over this instance's counts; answers where the wave stands (undefined: no such wave). */
  private async flush(id: string) {
    const counts = this.deps.counter.take(id);
    try {
      return await this.deps.store.flush(id, counts, this.now());
    } catch (err) {
      this.deps.counter.putBack(id, counts);
      throw err;
    }
  }

  private async check(id: string): Promise<void> {
    const progress = await this.flush(id);
    const limits = this.limits.get(id);
    if (progress === undefined || limits === undefined || progress.state !== "watching") {
      this.forget(id);
      if (progress?.state !== "watching") await this.deps.store.unwatch(id);
      return;
    }
    this.report(id, progress.totals);
    if (progress.claimed) return;
    const verdict = judge(progress.totals, limits, this.now());
    if (verdict?.kind === "breach") this.detach(this.rollBack(id, "threshold", verdict.detail, false));
    else if (verdict?.kind === "complete") await this.complete(id);
  }

  private report(id: string, t: WaveTotals): void {
    const gauge = this.deps.metrics.migrationWaveRequests;
    gauge.set({ wave: id, side: "wave", outcome: "ok" }, t.waveRequests - t.waveErrors);
    gauge.set({ wave: id, side: "wave", outcome: "error" }, t.waveErrors);
    gauge.set({ wave: id, side: "baseline", outcome: "ok" }, t.baseRequests - t.baseErrors);
    gauge.set({ wave: id, side: "baseline", outcome: "error" }, t.baseErrors);
  }

  private async complete(id: string): Promise<void> {
    const { store } = this.deps;
    if (!(await store.complete(id, new Date(this.now()).toISOString(), this.now()))) return;
    this.forget(id);
    await store.countEnd("watching", "completed");
    await store.unwatch(id);
    this.log.info({ event: "wave-completed", wave: id }, "migration wave completed: its window passed without a breach");
  }

  private detach(rollback: Promise<unknown>): void {
    const tracked = rollback.catch((err: unknown) =>
      this.log.warn({ event: "wave-rollback-failed", err: (err as Error).message }, "migration wave rollback failed; tried again"),
    );
    this.rollbacks.add(tracked);
    void tracked.finally(() => this.rollbacks.delete(tracked));
  }

  /**
   * Creates a wave: selects its devices (select.ts), records it as watching with each device's transport,
   * then moves them; this instance counts for it at once, the others from their next check. A dry run
   * answers the selection and writes nothing.
   */
  async create(request: WaveRequest): Promise<WavePlan | WaveView> {
    const { store, registry, counter } = this.deps;
    const planned = await selectDevices(request, {
      registry,
      areOnline: (records) => this.deps.areOnline(records),
      waveOf: (id) => counter.waveOf(id),
    });
    const settings = { windowMs: request.windowMs, maxErrorRateIncrease: request.maxErrorRateIncrease, minRequests: request.minRequests };
    if (request.dryRun) {
      return { dryRun: true, to: WAVE_TARGET, devices: planned.length, deviceIds: planned.map(([id]) => id), ...settings };
    }
    if (planned.length === 0) {
      throw new GatewayError("GW_CONFLICT", {
        field: request.ids ? "ids" : "filter",
        message: "no device to move: none on http or shadow matches, outside the waves being watched",
      });
    }
    const id = await store.nextId();
    await store.create({ id, createdAtMs: this.now(), ...settings }, planned);
    const wave = await store.get(id);
    if (wave) this.watch(wave, planned);
    const moved = await moveDevices(registry, planned, WAVE_TARGET);
    if (moved.length !== planned.length) {
      await store.setDevices(id, moved);
      counter.unwatch(id);
      if (wave) this.watch(wave, moved);
    }
    this.log.info({ event: "wave-started", wave: id, devices: moved.length, ...settings }, "migration wave started");
    return this.view(id, true);
  }

  async view(id: string, withDevices: boolean): Promise<WaveView> {
    const wave = await this.deps.store.get(id);
    if (!wave) throw unknownWave(id);
    if (withDevices) wave.deviceIds = (await this.deps.store.devices(id)).map(([deviceId]) => deviceId);
    return wave;
  }

  list(): Promise<WaveView[]> {
    return this.deps.store.list();
  }

  /** An operator's rollback of a watching or completed wave; 409 GW_CONFLICT when it is rolled back (or being). */
  async rollBackByHand(id: string): Promise<WaveView> {
    await this.rollBack(id, "manual", "rolled back by an operator", true);
    return this.view(id, true);
  }

  /**
   * Claims the wave (compare-and-set: exactly one instance gets it), puts its devices back, then records
   * the rollback. A claim outlives an instance that dies holding it by CLAIM_LEASE_MS at most; then the next
   * check takes it over and runs the rollback again (devices already put back are then listed as skipped).
   */
  private async rollBack(id: string, reason: RollbackReason, detail: string, byHand: boolean): Promise<void> {
    const { store, registry } = this.deps;
    const holder = `${this.deps.instanceId}:${randomUUID()}`;
    const at = new Date(this.now()).toISOString();
    const claimed = await store.claim(id, holder, this.now(), CLAIM_LEASE_MS, byHand);
    if (claimed !== "ok") {
      if (!byHand) return;
      if (claimed === "missing") throw unknownWave(id);
      throw new GatewayError("GW_CONFLICT", {
        message: claimed === "claimed" ? `wave ${id} is being rolled back` : `wave ${id} is ${claimed} already`,
      });
    }
    this.forget(id);
    const devices = await store.devices(id);
    const { restored, skipped } = await restoreDevices(registry, devices, WAVE_TARGET, () =>
      store.renew(id, holder, this.now() + CLAIM_LEASE_MS),
    );
    const before = await store.finishRollback(id, holder, { at, reason, detail, restored, skipped }, new Date(this.now()).toISOString());
    if (before === undefined) throw new Error(`wave ${id}: the rollback's claim was taken over by another instance`);
    this.deps.metrics.migrationWaveRollbacks.inc({ reason });
    await store.countEnd(before, "rolled-back");
    await store.unwatch(id);
    this.log.warn({ event: "wave-rolled-back", wave: id, reason, detail, restored, skipped: skipped.length }, "migration wave rolled back");
  }
}

function unknownWave(id: string): GatewayError {
  return new GatewayError("GW_NOT_FOUND", { message: `no wave ${id}` });
}
