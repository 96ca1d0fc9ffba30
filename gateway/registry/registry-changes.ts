import { randomBytes } from "node:crypto";
import { Cluster } from "ioredis";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";
import type { RedisClient, RedisStore } from "../redis/client.js";
import { RedisSubscriber } from "../redis/subscriber.js";
import { canonicalDeviceId } from "./device-id.js";

/** What the feed drives: a CachedRegistry. */
export interface ChangeTarget {
  drop(id: string): void;
  dropAll(): void;
  open(): void;
  close(): void;
}

/** While the feed is not sure to hear every change, it checks again after this, doubling up to RECHECK_MAX_MS. */
const RECHECK_MS = 1000;
const RECHECK_MAX_MS = 30_000;

/**
 * Events after which a subscription may be gone, and with it the notices published meanwhile (pub/sub keeps
 * nothing for an absent subscriber). On one node (or in Sentinel mode) the connection's close. In Cluster
 * mode the sharded subscribers are connections of their own inside ioredis (one per primary): one that ends
 * is announced as `-node` (with its node), a subscriber replaced as `-subscriber`; `-node` also tells of a
 * node left out of the command connections, which is taken as a loss too (the check that follows is cheap).
 */
const LOSS_EVENTS = ["close", "end", "-node", "-subscriber"] as const;

/**
 * Registry changes as every instance hears them (keys.ts, registryChanges()): RedisDeviceRegistry publishes
 * the device's id after each write of its entry, and the feed drops that id from this instance's cache. Any
 * other message (not a device id, not a check) drops the whole cache, so an operator who edited entries by
 * hand may publish anything there to have them seen at once.
 *
 * The cache is open only while the feed is sure to hear every change: from the moment a check it published
 * on the channel came back to it, until any sign that the subscription was lost (LOSS_EVENTS); then the
 * cache is closed (emptied, every lookup reads Redis) until a new check comes back. A check proves the
 * subscription end to end, in every Redis mode: it is delivered only if the subscription was in place when
 * it was published, so every change published after it is heard, until the subscription is lost. Only a
 * check published since the last loss counts (its `epoch`). The feed never unsubscribes while it runs: a
 * subscription ends only with its connection, which is a loss.
 *
 * Checks are published when the facade has subscribed (after every connect), and then every RECHECK_MS
 * (doubling) until one comes back; one that does not come back on a connection that is up means the
 * subscription failed there (the facade logs why, e.g. a channel the ACL user may not use), and the
 * connection is made again, which subscribes again.
 *
 * The subscriber is a RedisSubscriber on a connection of the feed's own (a duplicate of the store's, as
 * RedisStore.subscriber() makes), so that the feed sees its losses: the facade says when it subscribed
 * again, not when it lost a subscription.
 */
export class RegistryChangeFeed implements Lifecycle {
  private readonly connection: RedisClient;
  private readonly subscriber: RedisSubscriber;
  private readonly channel: string;
  /** This feed's checks are `?<nonce> <epoch>`; other instances' checks are ignored. */
  private readonly nonce = randomBytes(8).toString("hex");
  /** Bumped at every loss: only a check published after the last one opens the cache. */
  private epoch = 0;
  /** The epoch of the last check published (-1: none since the last loss), and when. */
  private checked = -1;
  private checkedAt = 0;
  private live = false;
  private stopped = false;
  private recheck: NodeJS.Timeout | undefined;
  private recheckMs = RECHECK_MS;
  private readonly log: Logger;

  /** `onNotice`: a change notice was applied (for the metric). */
  constructor(
    private readonly redis: RedisStore,
    private readonly cache: ChangeTarget,
    logger: Logger,
    private readonly onNotice: () => void = () => undefined,
  ) {
    this.log = logger.child({ component: "registry-changes" });
    this.channel = redis.keys.registryChanges();
    // On one node, the facade subscribes again after every connect, and handles a refusal; ioredis' own
    // resubscription (autoResubscribe) would send a second SUBSCRIBE whose refusal nobody catches (an
    // unhandled rejection). In Cluster mode ioredis keeps sharded channels itself, and the facade relies on it.
    this.connection = redis.client instanceof Cluster ? redis.client.duplicate() : redis.client.duplicate({ autoResubscribe: false });
    this.subscriber = new RedisSubscriber(this.connection, this.log, () => this.check());
    this.subscriber.listen(this.channel, (message) => this.receive(message));
    const lost = (): void => this.lost();
    for (const event of LOSS_EVENTS) this.connection.on(event, lost);
  }

  async start(): Promise<void> {
    this.scheduleRecheck();
    // Once connected and subscribed, the facade calls check().
    await this.subscriber.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.recheck);
    this.live = false;
    this.cache.close();
    await this.subscriber.stop();
  }

  private receive(message: string): void {
    if (message.startsWith("?")) {
      if (message === this.checkMessage() && !this.live && !this.stopped) this.opened();
      return;
    }
    this.onNotice();
    const id = canonicalDeviceId(message);
    if (id !== undefined) this.cache.drop(id);
    else this.cache.dropAll();
  }

  private opened(): void {
    this.live = true;
    clearTimeout(this.recheck);
    this.recheck = undefined;
    this.recheckMs = RECHECK_MS;
    this.cache.open();
    this.log.info({ event: "registry-cache-open" }, "registry changes heard: registry cache in use");
  }

  private lost(): void {
    if (this.stopped) return;
    this.epoch++;
    this.checked = -1;
    this.cache.close();
    if (this.live) {
      this.live = false;
      this.log.warn(
        { event: "registry-cache-closed" },
        "registry changes may go unheard: every request reads the registry until subscribed again",
      );
    }
    this.scheduleRecheck();
  }

  /** Publishes a check; it opens the cache when it comes back, unless a loss came first. */
  private check(): void {
    if (this.stopped || this.live) return;
    const epoch = this.epoch;
    this.redis.publish(this.channel, this.checkMessage()).then(
      () => {
        if (this.epoch !== epoch) return;
        this.checked = epoch;
        this.checkedAt = performance.now();
      },
      () => undefined, // not published: the recheck publishes another
    );
  }

  private checkMessage(): string {
    return `?${this.nonce} ${this.epoch}`;
  }

  private scheduleRecheck(): void {
    if (this.stopped || this.recheck !== undefined) return;
    this.recheck = setTimeout(() => {
      this.recheck = undefined;
      if (this.stopped || this.live) return;
      this.recheckMs = Math.min(this.recheckMs * 2, RECHECK_MAX_MS);
      const unheard = this.checked === this.epoch && performance.now() - this.checkedAt >= RECHECK_MS;
      if (this.connection.status === "ready" && unheard) {
        // Published on a connection that is up, and not heard back: the subscription is not in place there.
        this.log.warn({ event: "registry-changes-unheard" }, "registry change check not heard back: reconnecting the subscriber");
        this.connection.disconnect(true);
      } else if (this.checked !== this.epoch) {
        this.check();
      }
      this.scheduleRecheck();
    }, this.recheckMs);
    this.recheck.unref();
  }
}
