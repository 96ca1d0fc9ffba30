import type { Redis } from "ioredis";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";
import { closeConnection, type RedisStore } from "../redis/client.js";

/** What DeviceQueue needs of the notices: listen to one channel while it has waiters. */
export interface SlotFreedNotices {
  /** Calls `onFreed` for each notice on `channel` from another instance; `ready` settles once subscribed (or failed to). */
  listen(channel: string, onFreed: () => void): { ready: Promise<void>; stop(): void };
}

/**
 * Notices of slots freed on other instances (DeviceLimiter's release publishes `{prefix}slotfree:{id}`
 * with the releasing instance). An instance subscribes to a device's channel only while some request of
 * its own waits for that device, so a release costs one PUBLISH that usually reaches nobody, and no
 * instance hears the whole fleet's traffic. A subscriber connection of its own, like the reply bus
 * (a connection in subscriber mode can do nothing else); channels are subscribed again after a reconnect.
 * A notice lost meanwhile is covered by the waiters' retry at the earliest slot deadline (DeviceQueue).
 */
export class SlotNotices implements Lifecycle, SlotFreedNotices {
  private readonly subscriber: Redis;
  private readonly listeners = new Map<string, Set<() => void>>();
  private readonly log: Logger;

  constructor(redis: RedisStore, private readonly instanceId: string, logger: Logger) {
    this.log = logger.child({ component: "slot-notices" });
    this.subscriber = redis.subscriberConnection();
    this.subscriber.on("error", (err: Error) => this.log.warn({ event: "error", err: err.message }, "slot notices error"));
    this.subscriber.on("ready", () => {
      const channels = [...this.listeners.keys()];
      if (channels.length === 0) return;
      // Whatever was freed while the connection was down is found by the waiters' attempt once subscribed.
      const wakeAll = () => {
        for (const set of this.listeners.values()) for (const h of set) h();
      };
      this.subscriber.subscribe(...channels).then(wakeAll, (err: Error) => {
        this.failed(err);
        wakeAll();
      });
    });
    this.subscriber.on("message", (channel: string, from: string) => {
      if (from === this.instanceId) return; // this instance woke its own waiters already
      for (const h of this.listeners.get(channel) ?? []) h();
    });
  }

  async start(): Promise<void> {
    try {
      await this.subscriber.connect();
    } catch {
      // Reconnects by itself; `ready` subscribes then.
    }
  }

  async stop(): Promise<void> {
    this.listeners.clear();
    await closeConnection(this.subscriber);
  }

  listen(channel: string, onFreed: () => void): { ready: Promise<void>; stop(): void } {
    let set = this.listeners.get(channel);
    let ready: Promise<void> = Promise.resolve();
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      if (this.subscriber.status === "ready") ready = this.subscriber.subscribe(channel).then(() => undefined, (err: Error) => this.failed(err));
    }
    set.add(onFreed);
    return {
      ready,
      stop: () => {
        const current = this.listeners.get(channel);
        if (!current?.delete(onFreed) || current.size > 0) return;
        this.listeners.delete(channel);
        if (this.subscriber.status === "ready") this.subscriber.unsubscribe(channel).catch((err: Error) => this.failed(err));
      },
    };
  }

  get channels(): number {
    return this.listeners.size;
  }

  private failed(err: Error): void {
    this.log.warn({ event: "subscribe-failed", err: err.message }, "slot notices subscription failed; waiters rely on their retry");
  }
}
