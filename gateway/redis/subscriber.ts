import type { Redis } from "ioredis";
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
 */
export class RedisSubscriber implements Lifecycle {
  private readonly handlers = new Map<string, Set<MessageHandler>>();

  constructor(
    private readonly connection: Redis,
    private readonly log: Logger,
    onResubscribed?: () => void,
  ) {
    connection.on("error", (err: Error) => log.warn({ event: "error", err: err.message }, "redis subscriber error"));
    connection.on("ready", () => {
      const channels = [...this.handlers.keys()];
      if (channels.length === 0) return;
      connection.subscribe(...channels).then(
        () => onResubscribed?.(),
        (err: Error) => {
          this.failed(err);
          onResubscribed?.();
        },
      );
    });
    connection.on("message", (channel: string, message: string) => {
      for (const h of this.handlers.get(channel) ?? []) h(message);
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
    this.handlers.clear();
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
        ready = this.connection.subscribe(channel).then(
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
        if (this.connection.status === "ready") this.connection.unsubscribe(channel).catch((err: Error) => this.failed(err));
      },
    };
  }

  /** Channels listened to now. */
  get channels(): number {
    return this.handlers.size;
  }

  private failed(err: Error): void {
    this.log.warn({ event: "subscribe-failed", err: err.message }, "redis subscription failed");
  }
}

/** Closes a connection politely (QUIT), or at once when it is not connected. */
export async function closeConnection(client: Redis): Promise<void> {
  if (client.status === "end") return;
  try {
    await client.quit();
  } catch {
    client.disconnect();
    return;
  }
  // In Sentinel mode the failover detector holds a subscription to every Sentinel, which quit() leaves open
  // and reconnecting (ioredis issue #1362); disconnect() closes them too.
  if (client.options.sentinels) client.disconnect();
}
