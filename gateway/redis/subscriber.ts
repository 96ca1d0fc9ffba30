import { Cluster, Redis } from "ioredis";
import type { RedisClient } from "./client.js";
import { keepConnected } from "./keep-connected.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";

/** Called with a message published on a channel listened to. */
export type MessageHandler = (message: string) => void;

export interface Listening {
  /** Settles once the channel is subscribed (or the subscription failed: see the log). */
  ready: Promise<void>;
  stop(): void;
}

/**
 * A Redis connection in subscriber mode (in which it can do nothing else), with handlers per channel.
 * Channels are subscribed again whenever the connection becomes ready (at start, and after Redis comes back);
 * `onResubscribed` then runs, for listeners that must look for what was published while it was down
 * (pub/sub keeps nothing for an absent subscriber).
 *
 * On a Redis Cluster the subscriptions are sharded (SSUBSCRIBE, Redis 7.0): a channel is a key of one slot,
 * and its messages (SPUBLISH) stay on the shard that owns the slot instead of going to every node over the
 * cluster bus. ioredis (`shardedSubscribers`) holds one subscriber connection per primary and, when a slot's
 * primary changes (a failover), subscribes its channels again on the new one and emits `subscribersReady`.
 */
export class RedisSubscriber implements Lifecycle {
  private readonly handlers = new Map<string, Set<MessageHandler>>();
  /** Cluster mode: SSUBSCRIBE/SUNSUBSCRIBE and `smessage`. */
  private readonly sharded: boolean;
  /** Cluster mode: channels whose SSUBSCRIBE ioredis took; it keeps them and subscribes them again itself. */
  private readonly kept = new Set<string>();

  /** Connects again if ioredis gives the connection up by itself (keep-connected.ts). */
  private readonly keeper: { stop(): void };

  constructor(
    private readonly connection: RedisClient,
    private readonly log: Logger,
    onResubscribed?: () => void,
    reconnectDelay: () => number = () => 1000,
  ) {
    this.sharded = connection instanceof Cluster;
    this.keeper = keepConnected(connection, log, reconnectDelay);
    connection.on("error", (err: Error) => log.warn({ event: "error", err: err.message }, "redis subscriber error"));
    const resubscribe = (): void => {
      const channels = [...this.handlers.keys()].filter((c) => !this.kept.has(c));
      if (channels.length === 0) {
        if (this.sharded) onResubscribed?.();
        return;
      }
      this.subscribe(channels).then(
        () => onResubscribed?.(),
        (err: Error) => {
          this.failed(err);
          onResubscribed?.();
        },
      );
    };
    connection.on("ready", resubscribe);
    connection.on(this.sharded ? "smessage" : "message", (channel: string, message: string) => {
      for (const h of this.handlers.get(channel) ?? []) h(message);
    });
    // ioredis has subscribed the kept channels again after a change of primaries; any it never took are
    // tried again now. It also says so while connecting, before the Cluster takes commands: `ready` follows.
    if (this.sharded)
      connection.on("subscribersReady", () => {
        if (connection.status === "ready") resubscribe();
      });
  }

  async start(): Promise<void> {
    try {
      await this.connection.connect();
    } catch {
      // Reconnects by itself; `ready` subscribes then.
    }
  }

  async stop(): Promise<void> {
    this.keeper.stop();
    this.handlers.clear();
    this.kept.clear();
    await closeConnection(this.connection);
  }

  /** Calls `handler` for every message on `channel` until `stop()`; the channel is unsubscribed with its last handler. */
  listen(channel: string, handler: MessageHandler): Listening {
    let set = this.handlers.get(channel);
    let ready: Promise<void> = Promise.resolve();
    if (!set) {
      set = new Set();
      this.handlers.set(channel, set);
      if (this.connection.status === "ready")
        ready = this.subscribe([channel]).then(
          () => undefined,
          (err: Error) => this.failed(err),
        );
    }
    set.add(handler);
    return {
      ready,
      stop: () => {
        const current = this.handlers.get(channel);
        if (!current?.delete(handler) || current.size > 0) return;
        this.handlers.delete(channel);
        this.kept.delete(channel);
        if (this.connection.status !== "ready") return;
        const done = this.sharded ? this.connection.sunsubscribe(channel) : this.connection.unsubscribe(channel);
        done.catch((err: Error) => this.failed(err));
      },
    };
  }

  /** Channels listened to now. */
  get channels(): number {
    return this.handlers.size;
  }

  /**
   * One SUBSCRIBE for every channel, or in Cluster mode one SSUBSCRIBE per channel: the channels of one
   * SSUBSCRIBE must share a slot (ioredis refuses it otherwise, as Redis would with CROSSSLOT).
   */
  private async subscribe(channels: string[]): Promise<void> {
    if (!this.sharded) {
      await this.connection.subscribe(...channels);
      return;
    }
    const results = await Promise.allSettled(
      channels.map(async (channel) => {
        await this.connection.ssubscribe(channel);
        // Unless listen's stop came first: its SUNSUBSCRIBE took the channel out of ioredis' list, and it stays out of `kept`.
        if (this.handlers.has(channel)) this.kept.add(channel);
      }),
    );
    const failure = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failure) throw failure.reason;
  }

  private failed(err: Error): void {
    this.log.warn({ event: "subscribe-failed", err: err.message }, "redis subscription failed");
  }
}

/** Closes a connection politely (QUIT), or at once when it is not connected. */
export async function closeConnection(client: RedisClient): Promise<void> {
  if (client.status === "end") return;
  try {
    await client.quit();
  } catch {
    client.disconnect();
    return;
  }
  // In Sentinel mode the failover detector holds a subscription to every Sentinel, which quit() leaves open
  // and reconnecting (ioredis issue #1362); disconnect() closes them too.
  if (client instanceof Redis && client.options.sentinels) client.disconnect();
}
