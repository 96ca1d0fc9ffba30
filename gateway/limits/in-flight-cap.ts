/**
 * A ceiling on the device requests this instance holds at once, whatever device or client they are for
 * (503 GW_OVERLOADED beyond it). Per-device limits (DeviceLimiter) keep one device from being flooded;
 * this keeps the instance's own memory and sockets bounded when many devices are slow at the same time,
 * so the instance degrades by refusing some requests instead of by failing all of them.
 */
export class InFlightCap {
  private held = 0;

  constructor(readonly max: number) {}

  get size(): number {
    return this.held;
  }

  /** A place, and the function that gives it back (once, however often it is called); undefined when full. */
  tryEnter(): (() => void) | undefined {
    if (this.held >= this.max) return undefined;
    this.held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.held--;
    };
  }
}
