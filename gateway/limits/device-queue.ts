import { GatewayError } from "../errors.js";
import type { Metrics } from "../metrics/metrics.js";
import type { SlotAttempt, SlotSource } from "./device-limiter.js";
import type { SlotFreedNotices } from "./slot-notices.js";

export interface DeviceQueueOptions {
  /** GATEWAY_DEVICE_QUEUE_MAX: requests of one device that wait for a slot on this instance; 0: none wait. */
  maxPerDevice: number;
  /** Requests that wait on this instance, all devices together (GATEWAY_MAX_IN_FLIGHT). */
  maxTotal: number;
}

/**
 * What the queue needs to hear of a client hanging up: an AbortSignal has it, and so has the lighter one
 * the HTTP route makes for every request (delivery/device-slot.ts clientHangUp).
 */
export interface HangUpSignal {
  readonly aborted: boolean;
  addEventListener(type: "abort", listener: () => void, options?: { once: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/** One request's wait. */
export interface SlotWait {
  /** The request's whole budget (ms): waiting uses part of it, the exchange gets the rest. */
  timeoutMs: number;
  /** Aborted when the client hung up: the request leaves the queue. */
  signal?: HangUpSignal | undefined;
}

/** A slot held, and what is left of the request's budget for the exchange. */
export interface HeldSlot {
  release: () => void;
  remainingMs: number;
}

interface Waiter {
  deadline: number;
  resolve: (slot: HeldSlot) => void;
  reject: (err: Error) => void;
  cleanup: () => void;
  done: boolean;
}

/** The requests of one device on this instance. */
interface Line {
  deviceId: string;
  maxInFlight: number;
  waiters: Waiter[];
  /** First attempts in flight (not queued yet). */
  trying: number;
  /** Bumped on every wake: a first attempt that fails after a wake retries instead of waiting for the next. */
  wakes: number;
  pumping: boolean;
  again: boolean;
  retry: NodeJS.Timeout | undefined;
  notices: { stop(): void } | undefined;
}

/** Attempts sent together for the head of a line (the set answers them in order). */
const MAX_BATCH = 64;
/** Added to the earliest slot deadline before trying again, so the slot has expired by then on Redis's clock. */
const RETRY_SLACK_MS = 5;

/**
 * A bounded, fair wait for a device's in-flight slots (DeviceLimiter). A request beyond the device's
 * maxInFlight waits, first come first served per device on this instance, until a slot is free or its
 * deadline passes (504 GW_DEVICE_QUEUE_TIMEOUT); only a full queue answers 429 GW_DEVICE_BUSY. A waiter is
 * woken when:
 * - a slot of this instance is released (at once, no Redis round trip to learn it);
 * - another instance publishes a release on the device's channel (SlotNotices);
 * - the earliest slot's deadline passes: the slot of a crashed instance is reclaimed then, and a lost
 *   notice cannot leave anybody waiting past it.
 * A waiter whose client hung up leaves the queue. The queue never holds a slot itself: every attempt is a
 * fresh one in Redis, so instances share the limit exactly.
 */
export class DeviceQueue {
  private readonly lines = new Map<string, Line>();
  private waiting = 0;

  constructor(
    private readonly deps: {
      limiter: SlotSource;
      notices: SlotFreedNotices;
      metrics: Pick<Metrics, "deviceQueueRefusals">;
    },
    private readonly opts: DeviceQueueOptions,
  ) {
    for (const bound of ["device", "instance"] as const) deps.metrics.deviceQueueRefusals.inc({ bound }, 0);
  }

  /** Requests waiting now, all devices (gateway_device_queue_waiting). */
  get size(): number {
    return this.waiting;
  }

  /** Devices with requests waiting or being tried now on this instance. */
  get devices(): number {
    return this.lines.size;
  }

  /**
   * A slot, after waiting for one if need be; rejects with 429 when the queue is full, or the path's timeout.
   * A slot the source can lend at once, with nobody of the device waiting here, is handed over in this tick:
   * the request's most common case under load, with no line made and nothing awaited for it.
   */
  acquire(deviceId: string, maxInFlight: number, wait: SlotWait): Promise<HeldSlot> {
    if (!wait.signal?.aborted && !this.lines.get(deviceId)?.waiters.length) {
      const lent = this.deps.limiter.lendNow?.(deviceId, maxInFlight, wait.timeoutMs, () => this.wake(deviceId));
      if (lent?.taken) return Promise.resolve({ release: lent.release, remainingMs: Math.max(1, wait.timeoutMs) });
    }
    return this.attempt(deviceId, maxInFlight, wait);
  }

  /** acquire(), when no slot could be lent at once: an attempt, and the line if it fails. */
  private async attempt(deviceId: string, maxInFlight: number, wait: SlotWait): Promise<HeldSlot> {
    const started = Date.now();
    const deadline = started + wait.timeoutMs;
    if (wait.signal?.aborted) throw clientGone();
    const line = this.line(deviceId, maxInFlight);
    // Somebody waits already: a free slot is theirs, so a newcomer joins the end without trying.
    if (line.waiters.length === 0) {
      const wakes = line.wakes;
      line.trying++;
      let attempt: SlotAttempt;
      try {
        attempt = await this.deps.limiter.tryAcquire(deviceId, maxInFlight, wait.timeoutMs, () => this.wake(deviceId));
      } catch (err) {
        line.trying--;
        this.forget(line);
        throw err;
      }
      line.trying--;
      if (attempt.taken) {
        this.forget(line);
        return { release: attempt.release, remainingMs: Math.max(1, deadline - Date.now()) };
      }
      const queued = this.enqueue(line, deadline, wait);
      if (line.waiters.length > 0) {
        // A slot freed between the attempt and now: its wake found nobody waiting yet.
        if (line.wakes !== wakes) this.pump(line);
        else this.retryIn(line, attempt.retryInMs);
      }
      return queued;
    }
    return this.enqueue(line, deadline, wait);
  }

  /** Fails every waiter (the drain's bound reached: GW_SHUTTING_DOWN). */
  failAll(err: Error): void {
    for (const line of [...this.lines.values()]) for (const waiter of [...line.waiters]) this.leave(line, waiter, err);
  }

  /** A slot of this device was released (here, or on another instance): the head of the line tries again. */
  wake(deviceId: string): void {
    const line = this.lines.get(deviceId);
    if (!line) return;
    line.wakes++;
    if (line.waiters.length > 0) this.pump(line);
  }

  private line(deviceId: string, maxInFlight: number): Line {
    let line = this.lines.get(deviceId);
    if (!line) {
      line = {
        deviceId,
        maxInFlight,
        waiters: [],
        trying: 0,
        wakes: 0,
        pumping: false,
        again: false,
        retry: undefined,
        notices: undefined,
      };
      this.lines.set(deviceId, line);
    }
    line.maxInFlight = maxInFlight; // the registry's latest word
    return line;
  }

  private enqueue(line: Line, deadline: number, wait: SlotWait): Promise<HeldSlot> {
    const { maxPerDevice, maxTotal } = this.opts;
    const bound = line.waiters.length >= maxPerDevice ? "device" : this.waiting >= maxTotal ? "instance" : undefined;
    if (bound) {
      this.forget(line);
      this.deps.metrics.deviceQueueRefusals.inc({ bound });
      return Promise.reject(
        this.deps.limiter.busy(
          bound === "device"
            ? `device already has ${line.maxInFlight} requests in flight and ${line.waiters.length} waiting`
            : `device already has ${line.maxInFlight} requests in flight, and this instance has ${this.waiting} requests waiting`,
        ),
      );
    }
    return new Promise<HeldSlot>((resolve, reject) => {
      const waiter: Waiter = { deadline, resolve, reject, cleanup: () => undefined, done: false };
      const timer = setTimeout(() => this.leave(line, waiter, queueTimeout(line, wait.timeoutMs)), Math.max(0, deadline - Date.now()));
      const onAbort = () => this.leave(line, waiter, clientGone());
      wait.signal?.addEventListener("abort", onAbort, { once: true });
      waiter.cleanup = () => {
        clearTimeout(timer);
        wait.signal?.removeEventListener("abort", onAbort);
      };
      line.waiters.push(waiter);
      this.waiting++;
      if (line.waiters.length === 1 && !line.notices) {
        const notices = this.deps.notices.listen(this.deps.limiter.channel(line.deviceId), () => this.wake(line.deviceId));
        line.notices = notices;
        // Released elsewhere between the failed attempt and the subscription: no notice came for it.
        void notices.ready.then(() => this.pump(line));
      }
    });
  }

  /** Takes a waiter out of its line (deadline, hang-up, error) and fails it. */
  private leave(line: Line, waiter: Waiter, err: Error): void {
    if (waiter.done) return;
    this.settle(line, waiter);
    waiter.reject(err);
    this.forget(line);
  }

  private settle(line: Line, waiter: Waiter): void {
    waiter.done = true;
    waiter.cleanup();
    const i = line.waiters.indexOf(waiter);
    if (i !== -1) {
      line.waiters.splice(i, 1);
      this.waiting--;
    }
  }

  /**
   * Tries for the head of the line until an attempt finds the set full: one attempt first (a wake usually
   * means one slot freed), then twice as many each round while all succeed (sent together, answered in
   * order by Redis), up to the device's maxInFlight. One pump per line at a time; a wake meanwhile makes it
   * go round again.
   */
  private pump(line: Line): void {
    if (line.pumping) {
      line.again = true;
      return;
    }
    line.pumping = true;
    void this.pumpRounds(line).finally(() => {
      line.pumping = false;
      this.forget(line);
    });
  }

  private async pumpRounds(line: Line): Promise<void> {
    let size = 1;
    do {
      line.again = false;
      const batch = line.waiters.slice(0, Math.min(size, line.maxInFlight, MAX_BATCH));
      if (batch.length === 0) return;
      const attempts = await Promise.all(
        batch.map((w) =>
          this.deps.limiter
            .tryAcquire(line.deviceId, line.maxInFlight, Math.max(1, w.deadline - Date.now()), () => this.wake(line.deviceId))
            .then(
              (attempt) => ({ attempt }),
              (err: unknown) => ({ err: err as Error }),
            ),
        ),
      );
      let full: number | undefined;
      attempts.forEach((outcome, i) => {
        const waiter = batch[i] as Waiter;
        if ("err" in outcome) {
          this.leave(line, waiter, outcome.err); // Redis away: 503 now rather than a wait to the deadline
        } else if (outcome.attempt.taken) {
          if (waiter.done) {
            outcome.attempt.release(); // left meanwhile: the slot goes to the next one (release wakes it)
          } else {
            this.settle(line, waiter);
            waiter.resolve({ release: outcome.attempt.release, remainingMs: Math.max(1, waiter.deadline - Date.now()) });
          }
        } else {
          full = Math.min(full ?? Infinity, outcome.attempt.retryInMs);
        }
      });
      if (full !== undefined) {
        this.retryIn(line, full);
        if (!line.again) return;
        size = 1;
      } else {
        size *= 2;
      }
    } while (line.waiters.length > 0);
  }

  /** The fallback wake: when the earliest slot's deadline passes, it is reclaimed (its instance may be gone). */
  private retryIn(line: Line, ms: number): void {
    if (line.retry) clearTimeout(line.retry);
    line.retry = setTimeout(() => {
      line.retry = undefined;
      this.pump(line);
    }, ms + RETRY_SLACK_MS);
    line.retry.unref();
  }

  /** Drops a line nobody waits in any more. */
  private forget(line: Line): void {
    if (line.waiters.length > 0 || line.trying > 0 || line.pumping) return;
    if (line.retry) clearTimeout(line.retry);
    line.retry = undefined;
    line.notices?.stop();
    line.notices = undefined;
    if (this.lines.get(line.deviceId) === line) this.lines.delete(line.deviceId);
  }
}

/**
 * The deadline passed while the request waited: one code on both paths, since the cause is the device's
 * queue, not its transport. 504 like any timeout for a client that reads the status only; a code of its
 * own because, unlike a device timeout, it proves the device was not reached: an Idempotency-Key is freed
 * (stored-outcome.ts), so a retry may go to the device.
 */
function queueTimeout(line: Line, timeoutMs: number): GatewayError {
  return new GatewayError("GW_DEVICE_QUEUE_TIMEOUT", {
    message: `no slot of the device's ${line.maxInFlight} came free within ${timeoutMs} ms; the device was not reached`,
  });
}

/** The client hung up while its request waited: nobody reads the answer, and the device was not reached. */
function clientGone(): GatewayError {
  return new GatewayError("GW_DEVICE_BUSY", { message: "the client went away while its request waited for a slot" });
}
