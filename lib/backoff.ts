/**
 * Reconnect delays: exponential with "full jitter" (a random delay in [0, min(cap, base·2^attempt)]), so that
 * a fleet of agents, or several gateway instances, that lose the server at the same moment do not come
 * back in lock-step and do not flap against each other.
 */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Random source in [0, 1); injectable so tests are deterministic. */
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 30_000 };

export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions = DEFAULT_BACKOFF) {}

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const ceiling = Math.min(this.opts.maxMs, this.opts.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const random = this.opts.random ?? Math.random;
    // Never 0: keep a floor of a tenth of the first delay so a tight failure loop cannot spin.
    return Math.max(this.opts.initialMs / 10, Math.floor(random() * ceiling));
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
