/**
 * A ceiling on the request and reply bytes this instance holds in memory at once (GATEWAY_MAX_BUFFERED_BYTES),
 * whatever request they belong to. GATEWAY_MAX_BODY_BYTES bounds one request and GATEWAY_MAX_IN_FLIGHT counts
 * requests, not bytes: without this, many large bodies read at the same time (each then refused, or waiting
 * for its device) grow the process until it dies. Bytes are reserved as they arrive, before they are kept,
 * so the ceiling holds at every moment; beyond it the caller refuses (503 GW_OVERLOADED) rather than waits.
 */
export class ByteBudget {
  private heldBytes = 0;

  constructor(
    readonly max: number,
    private readonly hooks: { onRefused?: () => void } = {},
  ) {}

  /** Bytes reserved now, by every open reservation. */
  get held(): number {
    return this.heldBytes;
  }

  /** A reservation of no bytes yet, grown with `add` and given back, all at once, with `release`. */
  open(): Reservation {
    return new Reservation(this);
  }

  /** @internal Reservation's side: takes `n` bytes if they fit. */
  take(n: number): boolean {
    if (this.heldBytes + n > this.max) {
      this.hooks.onRefused?.();
      return false;
    }
    this.heldBytes += n;
    return true;
  }

  /** @internal */
  give(n: number): void {
    this.heldBytes -= n;
  }
}

/** The bytes one request (or one reply) holds. Released once, however often `release` is called. */
export class Reservation {
  private reserved = 0;
  private released = false;

  constructor(private readonly budget: ByteBudget) {}

  get bytes(): number {
    return this.reserved;
  }

  /**
   * Reserves `n` bytes more; false (and nothing reserved) when they do not fit in the budget, or when the
   * reservation was released already (its bytes would never be given back).
   */
  add(n: number): boolean {
    if (this.released) return false;
    if (n <= 0) return true;
    if (!this.budget.take(n)) return false;
    this.reserved += n;
    return true;
  }

  /** Reserves up to `total` bytes in all: what was reserved already counts towards it. */
  reserveUpTo(total: number): boolean {
    return this.add(total - this.reserved);
  }

  release = (): void => {
    if (this.released) return;
    this.released = true;
    this.budget.give(this.reserved);
    this.reserved = 0;
  };
}
