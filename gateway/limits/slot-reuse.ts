import { performance } from "node:perf_hooks";
import type { Lifecycle } from "../lifecycle.js";
import { SLOT_GRACE_MS, takenSlot, type RedisSlotSource, type SlotAttempt, type SlotRef, type SlotSource } from "./device-limiter.js";

/**
 * How long a slot given back waits, parked on this instance, for its device's next request before it goes
 * back to Redis: about a client's round trip for its next request on a LAN (a closed-loop client asks
 * again as soon as it has its answer), short enough that another instance waiting for the slot barely
 * notices. A constant: GATEWAY_DEVICE_SLOT_REUSE_MS is the bound that matters to operators.
 */
export const SLOT_LINGER_MS = 20;

/**
 * A slot taken while its device was quiet, at most this share of its maxInFlight in use across all
 * instances (this slot included), stays parked until its window ends rather than for SLOT_LINGER_MS. A
 * client that polls a fleet one device after another comes back to a device long after any linger, and
 * without this each of its requests waited for a Redis round trip (the take) before it could leave; a quiet
 * device has slots to spare for the other instances meanwhile. Half: the slots taken past half of the
 * device's maxInFlight are parked for the linger only, so the slots parked for a whole window are never
 * more than half of the device's, all instances together. A busy device's slot parked for the linger only
 * was given back and taken again whenever its requests dipped for longer than the linger (with a quarter,
 * a device kept at 6 of 16 slots took about twice as many slots from Redis as its window alone needs). A
 * one-request-at-a-time device never counts as quiet.
 */
export const QUIET_SHARE = 1 / 2;

/** One slot taken from Redis, the same object through every request it is lent to. */
interface Slot {
  /** Gives the slot back in Redis (DeviceLimiter's release: ZREM and the freed-slot notice). */
  giveBack: () => void;
  /** performance.now() after which it is not lent again (taken + GATEWAY_DEVICE_SLOT_REUSE_MS). */
  reusableUntil: number;
  /** performance.now() before which it is surely still in Redis: its score is Redis's now at the take, later. */
  expiresAt: number;
  /** When it was last parked. */
  parkedAt: number;
  /** How long it stays parked each time: SLOT_LINGER_MS, or until `reusableUntil` for a quiet device's slot. */
  lingerMs: number;
  /** Its current (or last) holder's wake-up (DeviceQueue's line), told once the slot is back in Redis. */
  onReleased: (() => void) | undefined;
  /** The lifetime it was taken for (deadline and window), which a renewal gives it again. */
  lifetimeMs: number;
  /** Its device's maxInFlight as its latest request had it. */
  maxInFlight: number;
  /** Lent (or taken) since it was taken or last renewed: only such a slot is renewed. */
  used: boolean;
  renewing: boolean;
}

/**
 * A device's in-flight slot taken from Redis serves this instance's next requests of that device for a
 * while (GATEWAY_DEVICE_SLOT_REUSE_MS, from the take): given back, it is parked for SLOT_LINGER_MS (a quiet
 * device's: until the window ends, QUIET_SHARE) and lent to the next request that fits, without a Redis
 * command. A busy device's requests then cost no Redis round trip for their slot most of the time, where
 * each cost two (take and give back).
 *
 * What stays exact: a parked slot is still in the device's set in Redis, so the instances together never
 * have more than maxInFlight requests at a device. What moves, and by how much (README, "Device requests"):
 * - a slot is taken for its request's deadline plus the reuse window, so a slot of a crashed instance is
 *   reclaimed up to the window later;
 * - a slot freed here is offered to this instance's next request for up to SLOT_LINGER_MS before another
 *   instance hears of it (a quiet device's, until its window ends: the others then had at least the rest of
 *   the device's slots free when it was taken);
 * - a lowered maxInFlight holds for new slots at once, and for slots being lent again within the window
 *   (a slot is lent only while this instance holds fewer than the device's current maxInFlight).
 * A slot is lent only to a request whose deadline (plus grace) ends before the slot does in Redis.
 *
 * A slot that keeps being lent is renewed in Redis before its window ends, while its device has a slot
 * free (DeviceLimiter's RENEW): a new lifetime from then, and a new window. Renewals of all slots due go in
 * one command every quarter window, off every request's path; without them each slot went back to Redis
 * and was taken again once a window, and the request that took it waited for that round trip. With every
 * slot of the device taken the slot is not renewed, so an instance waiting for one gets it when the window
 * ends, as before. What stays: a slot of a crashed instance is reclaimed at most its lifetime after its
 * last take or renewal; a slot left unused for a window goes back.
 */
export class SlotReuse implements SlotSource, Lifecycle {
  private readonly parked = new Map<string, Slot[]>();
  /** Slots held by requests now, per device (lent or taken), for the lowered-maxInFlight check. */
  private readonly held = new Map<string, number>();
  private sweep: NodeJS.Timeout | undefined;
  /**
   * Slots taken from Redis and not given back, each with its member there (a source that cannot renew names
   * none, and its slots are not kept here); and the renewals' timer.
   */
  private readonly live = new Map<Slot, SlotRef>();
  private renewals: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Slots handed to requests so far: taken from Redis, or lent again here (gateway_device_slots_total). */
  readonly counts = { redis: 0, reused: 0 };

  constructor(
    private readonly slots: RedisSlotSource,
    private readonly windowMs: number,
  ) {}

  channel(deviceId: string): string {
    return this.slots.channel(deviceId);
  }

  busy(message: string) {
    return this.slots.busy(message);
  }

  tryAcquire(deviceId: string, maxInFlight: number, timeoutMs: number, onReleased?: () => void): Promise<SlotAttempt> {
    if (this.windowMs <= 0 || this.stopped)
      return this.slots.tryAcquire(deviceId, maxInFlight, timeoutMs, onReleased).then((attempt) => {
        if (attempt.taken) this.counts.redis++;
        return attempt;
      });
    const now = performance.now();
    const lent = this.lendNow(deviceId, maxInFlight, timeoutMs, onReleased, now);
    if (lent) return Promise.resolve(lent);
    // Taken for the request's deadline and the window: a request lent the slot later must end before it does.
    const lifetimeMs = Math.max(1, Math.ceil(timeoutMs)) + this.windowMs;
    return this.slots.tryAcquire(deviceId, maxInFlight, lifetimeMs).then((attempt) => {
      if (!attempt.taken) return attempt;
      this.counts.redis++;
      const slot: Slot = {
        giveBack: attempt.release,
        reusableUntil: now + this.windowMs,
        expiresAt: now + lifetimeMs + SLOT_GRACE_MS,
        parkedAt: 0,
        lingerMs: attempt.inUse !== undefined && attempt.inUse <= maxInFlight * QUIET_SHARE ? this.windowMs : SLOT_LINGER_MS,
        onReleased: undefined,
        lifetimeMs,
        maxInFlight,
        used: true,
        renewing: false,
      };
      if (attempt.renewable) {
        this.live.set(slot, attempt.renewable);
        this.renewals ??= setTimeout(() => this.renewDue(), this.renewEveryMs).unref();
      }
      return this.hold(deviceId, slot, maxInFlight, onReleased);
    });
  }

  /** A parked slot of the device lent at once, as tryAcquire would lend it; undefined when none fits. */
  lendNow(
    deviceId: string,
    maxInFlight: number,
    timeoutMs: number,
    onReleased?: () => void,
    now = performance.now(),
  ): SlotAttempt | undefined {
    if (this.windowMs <= 0 || this.stopped) return undefined;
    const lent = this.lend(deviceId, maxInFlight, timeoutMs, now);
    if (!lent) return undefined;
    this.counts.reused++;
    return this.hold(deviceId, lent, maxInFlight, onReleased);
  }

  start(): Promise<void> {
    this.stopped = false;
    return Promise.resolve();
  }

  /**
   * Parked slots go back to Redis; from now on every slot does when its request ends. Resolves once their
   * give-back is sent (DeviceLimiter sends the slots given back in a tick at its end), so that whatever stops
   * after this (Redis) comes after it.
   */
  stop(): Promise<void> {
    this.stopped = true;
    if (this.sweep) clearTimeout(this.sweep);
    this.sweep = undefined;
    clearTimeout(this.renewals);
    this.renewals = undefined;
    const parked = [...this.parked.values()].flat();
    this.parked.clear();
    this.giveBack(parked);
    return new Promise((resolve) => process.nextTick(resolve));
  }

  /** Slots parked now, all devices. */
  get parkedCount(): number {
    let n = 0;
    for (const slots of this.parked.values()) n += slots.length;
    return n;
  }

  /**
   * A parked slot of the device that outlives this request's deadline, most recently parked first. One that
   * does not fit, or with the device already at maxInFlight here (lowered meanwhile), goes back to Redis
   * rather than stay in the way of the attempt that follows.
   */
  private lend(deviceId: string, maxInFlight: number, timeoutMs: number, now: number): Slot | undefined {
    const slots = this.parked.get(deviceId);
    if (!slots) return undefined;
    const atMax = (this.held.get(deviceId) ?? 0) >= maxInFlight;
    let lent: Slot | undefined;
    let unfit: Slot[] | undefined;
    while (!lent && slots.length > 0) {
      const slot = slots.pop() as Slot;
      if (!atMax && now < slot.reusableUntil && now + timeoutMs + SLOT_GRACE_MS <= slot.expiresAt) lent = slot;
      else (unfit ??= []).push(slot);
    }
    if (slots.length === 0) this.parked.delete(deviceId);
    if (unfit) this.giveBack(unfit);
    return lent;
  }

  private hold(deviceId: string, slot: Slot, maxInFlight: number, onReleased: (() => void) | undefined): SlotAttempt {
    this.held.set(deviceId, (this.held.get(deviceId) ?? 0) + 1);
    slot.onReleased = onReleased;
    slot.used = true;
    slot.maxInFlight = maxInFlight;
    return takenSlot(() => {
      const left = (this.held.get(deviceId) ?? 1) - 1;
      if (left > 0) this.held.set(deviceId, left);
      else this.held.delete(deviceId);
      // A request of this device waiting here is lent the parked slot by its next attempt.
      if (this.park(deviceId, slot)) onReleased?.();
    });
  }

  /**
   * A slot its request is done with: parked for the device's next request (true), or back to Redis once
   * past its window (false).
   */
  private park(deviceId: string, slot: Slot): boolean {
    const now = performance.now();
    if (this.stopped || now >= slot.reusableUntil) {
      this.giveBack([slot]);
      return false;
    }
    slot.parkedAt = now;
    const slots = this.parked.get(deviceId);
    if (slots) slots.push(slot);
    else this.parked.set(deviceId, [slot]);
    this.sweep ??= setTimeout(() => this.sweepParked(), SLOT_LINGER_MS).unref();
    return true;
  }

  /**
   * Slots parked for their linger or past their window go back to Redis; the sweep runs again while any stay
   * parked. With quiet devices' slots parked for up to the window this walks every parked device each time,
   * so it allocates only for a device with something to give back.
   */
  private sweepParked(): void {
    this.sweep = undefined;
    const now = performance.now();
    const due = (slot: Slot) => now - slot.parkedAt >= slot.lingerMs || now >= slot.reusableUntil;
    let stale: Slot[] | undefined;
    for (const [deviceId, slots] of this.parked) {
      if (!slots.some(due)) continue;
      const kept = slots.filter((slot) => !due(slot));
      (stale ??= []).push(...slots.filter(due));
      if (kept.length > 0) this.parked.set(deviceId, kept);
      else this.parked.delete(deviceId);
    }
    // Given back once the walk is over: a give-back's wake-up may park or lend slots of its own.
    if (stale) this.giveBack(stale);
    if (this.parked.size > 0) this.sweep = setTimeout(() => this.sweepParked(), SLOT_LINGER_MS).unref();
  }

  /**
   * Slots back to Redis (the ones of a tick in one command: DeviceLimiter), and their last holders' wake-ups
   * once that is sent: an attempt made then is answered after it (one connection, in order).
   */
  private giveBack(slots: readonly Slot[]): void {
    if (slots.length === 0) return;
    for (const slot of slots) {
      this.live.delete(slot);
      slot.giveBack();
    }
    this.slots.afterReleases(() => {
      for (const slot of slots) slot.onReleased?.();
    });
  }

  /** A quarter window: a slot due (half its window left) is renewed with at least a quarter window to spare. */
  private get renewEveryMs(): number {
    return Math.max(1, Math.floor(this.windowMs / 4));
  }

  /**
   * Renews, in one command, the slots lent since their take or last renewal that have half their window left
   * or less; each renewed one gets a new window and lifetime from when the command was sent (Redis's now,
   * at which the script scores it, comes later). Runs again while this instance holds slots.
   */
  private renewDue(): void {
    this.renewals = undefined;
    if (this.stopped || this.live.size === 0) return;
    const now = performance.now();
    const due: Slot[] = [];
    for (const slot of this.live.keys()) {
      if (slot.used && !slot.renewing && now < slot.reusableUntil && slot.reusableUntil - now <= this.windowMs / 2) due.push(slot);
    }
    if (due.length > 0) {
      for (const slot of due) {
        slot.renewing = true;
        slot.used = false;
      }
      const done = (refused: readonly number[]): void => {
        const no = new Set(refused);
        due.forEach((slot, i) => {
          slot.renewing = false;
          // Given back meanwhile: no longer this instance's.
          if (!this.live.has(slot) || no.has(i)) return;
          slot.reusableUntil = now + this.windowMs;
          slot.expiresAt = now + slot.lifetimeMs + SLOT_GRACE_MS;
        });
      };
      // A renewal that fails changes nothing: the slot goes back when its window ends, as it would have.
      this.slots
        .renew(due.map((slot) => ({ slot: this.live.get(slot) as SlotRef, lifetimeMs: slot.lifetimeMs, maxInFlight: slot.maxInFlight })))
        .then(done, () => done(due.map((_, i) => i)));
    }
    this.renewals = setTimeout(() => this.renewDue(), this.renewEveryMs).unref();
  }
}
