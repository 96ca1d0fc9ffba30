import { Backoff } from "../../lib/backoff.js";
import { isGatewayError } from "../errors.js";

/**
 * Runs a write to the store again, with jittered backoff, while the store is unreachable and `until` (epoch
 * ms) has not passed: an outcome the gateway holds in memory (a device's reply, an idempotent request's
 * result) should not be dropped because Redis was restarting at that moment. Other failures, and the last
 * one, are thrown.
 */
export async function retryWhileStoreAway(
  write: () => Promise<void>,
  until: number,
  backoff = new Backoff({ initialMs: 100, maxMs: 2000 }),
): Promise<void> {
  for (;;) {
    try {
      await write();
      return;
    } catch (err) {
      const delay = backoff.next();
      if (!isGatewayError(err) || err.code !== "GW_STORE_UNAVAILABLE" || Date.now() + delay > until) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
