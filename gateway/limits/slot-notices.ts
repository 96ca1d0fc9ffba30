import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";
import type { RedisStore } from "../redis/client.js";
import type { RedisSubscriber } from "../redis/subscriber.js";

/** What DeviceQueue needs of the notices: listen to one channel while it has waiters. */
export interface SlotFreedNotices {
  /** Calls `onFreed` for each notice on `channel` from another instance; `ready` settles once subscribed (or failed to). */
  listen(channel: string, onFreed: () => void): { ready: Promise<void>; stop(): void };
}

/**
 * Notices of slots freed on other instances (DeviceLimiter's release publishes `{prefix}slotfree:{id}`
 * with the releasing instance). An instance subscribes to a device's channel only while some request of
 * its own waits for that device, so a release costs one PUBLISH that usually reaches nobody, and no
 * instance hears the whole fleet's traffic. A subscriber connection of its own (RedisSubscriber); channels
 * are subscribed again after a reconnect, and every waiter then tries again, for a slot freed meanwhile;
 * a notice lost otherwise is covered by the waiters' retry at the earliest slot deadline (DeviceQueue).
 */
export class SlotNotices implements Lifecycle, SlotFreedNotices {
  private readonly subscriber: RedisSubscriber;
  private readonly wakers = new Set<() => void>();

  constructor(
    redis: RedisStore,
    private readonly instanceId: string,
    logger: Logger,
  ) {
    // Whatever was freed while the connection was down is found by the waiters' attempt once subscribed.
    this.subscriber = redis.subscriber(logger.child({ component: "slot-notices" }), () => {
      for (const wake of this.wakers) wake();
    });
  }

  start(): Promise<void> {
    return this.subscriber.start();
  }

  async stop(): Promise<void> {
    this.wakers.clear();
    await this.subscriber.stop();
  }

  listen(channel: string, onFreed: () => void): { ready: Promise<void>; stop(): void } {
    this.wakers.add(onFreed);
    const listening = this.subscriber.listen(channel, (from) => {
      if (from !== this.instanceId) onFreed(); // this instance woke its own waiters already
    });
    return {
      ready: listening.ready,
      stop: () => {
        this.wakers.delete(onFreed);
        listening.stop();
      },
    };
  }

  get channels(): number {
    return this.subscriber.channels;
  }
}
