import type { ServerResponse } from "node:http";
import { whenClosed } from "../../lib/http/response-end.js";

/**
 * A ceiling on the device requests this instance holds at once, whatever device or client they are for
 * (503 GW_OVERLOADED beyond it). Per-device limits (DeviceLimiter) keep one device from being flooded;
 * this keeps the instance's own memory and sockets bounded when many devices are slow at the same time,
 * so the instance degrades by refusing some requests instead of by failing all of them.
 */
export class InFlightCap {
  private held = 0;
  /** One function for every place given back: a held request keeps no closure of its own for it. */
  private readonly leave = (): void => {
    this.held--;
  };

  constructor(readonly max: number) {}

  get size(): number {
    return this.held;
  }

  /**
   * A place for `res`'s request until the response is over (finished or aborted: given back once, when its
   * `close` comes); false when the cap is reached.
   */
  holdUntilClosed(res: ServerResponse): boolean {
    if (this.held >= this.max) return false;
    this.held++;
    whenClosed(res, this.leave);
    return true;
  }
}
