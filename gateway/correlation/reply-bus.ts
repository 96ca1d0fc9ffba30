import type { Redis } from "ioredis";
import { isElement, type XmlElement, type XmlNode } from "../../lib/xep0332/xml.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";
import { closeConnection, type RedisStore } from "../redis/client.js";

export type ForwardedHandler = (stanza: XmlElement) => void;
/** Called with the instance whose component connection closed. */
export type DepartureHandler = (instanceId: string) => void;

/**
 * Stanzas for exchanges another instance owns (README, "Running several instances"): the XMPP server may deliver a device's reply
 * to any connection of the component domain (ejabberd spreads them at random; after a rolling replacement
 * only the new instance is connected), so the receiver publishes it on `{prefix}reply:{owner}` and the owner
 * finishes the exchange. Each instance listens on its own channel, on a connection of its own (a Redis
 * connection in subscriber mode can do nothing else).
 *
 * Every instance also listens on `{prefix}departed`, where an instance whose component connection closed says
 * so: a reply the XMPP server routed to that connection as it closed is gone, and the owners of requests
 * that may be sent again resend them (XmppExchanger.resendUnanswered).
 */
export class ReplyBus implements Lifecycle {
  private readonly subscriber: Redis;
  private readonly channel: string;
  private readonly departures: string;
  private readonly handlers: ForwardedHandler[] = [];
  private readonly departureHandlers: DepartureHandler[] = [];
  private readonly log: Logger;

  /**
   * `onForwarded`: a stanza another instance received for an exchange of this one; `onDeparture`: another
   * instance's component connection closed.
   */
  constructor(
    private readonly redis: RedisStore,
    private readonly instanceId: string,
    logger: Logger,
    handlers: { onForwarded?: ForwardedHandler; onDeparture?: DepartureHandler } = {},
  ) {
    if (handlers.onForwarded) this.handlers.push(handlers.onForwarded);
    if (handlers.onDeparture) this.departureHandlers.push(handlers.onDeparture);
    this.log = logger.child({ component: "reply-bus" });
    this.channel = redis.keys.replyChannel(instanceId);
    this.departures = redis.keys.departures();
    this.subscriber = redis.subscriberConnection();
    this.subscriber.on("error", (err: Error) => this.log.warn({ event: "error", err: err.message }, "reply bus error"));
    // (Re)subscribe whenever the connection becomes ready: at start, and after Redis comes back.
    this.subscriber.on("ready", () => {
      this.subscriber.subscribe(this.channel, this.departures).catch((err: Error) => this.log.warn({ event: "subscribe-failed", err: err.message }, "reply bus subscribe failed"));
    });
    this.subscriber.on("message", (channel: string, message: string) => {
      if (channel === this.departures) this.departed(message);
      else this.receive(message);
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
    await closeConnection(this.subscriber);
  }

  /** Publishes a stanza to its owner; false when no instance listens there (the owner is gone). */
  async forward(owner: string, stanza: XmlElement): Promise<boolean> {
    const receivers = await this.redis.run((c) => c.publish(this.redis.keys.replyChannel(owner), JSON.stringify(plain(stanza))));
    return receivers > 0;
  }

  /** Tells the other instances that this one's component connection closed (after it did). */
  async announceDeparture(): Promise<void> {
    await this.redis.run((c) => c.publish(this.departures, this.instanceId));
  }

  private departed(instanceId: string): void {
    if (instanceId === this.instanceId) return;
    for (const h of this.departureHandlers) h(instanceId);
  }

  private receive(message: string): void {
    let stanza: unknown;
    try {
      stanza = JSON.parse(message);
    } catch {
      return;
    }
    if (!isElement(stanza)) return;
    for (const h of this.handlers) h(stanza);
  }
}

/** The tree without ltx's back-references (`parent`), which JSON cannot hold. */
export function plain(node: XmlElement): XmlElement {
  return { name: node.name, attrs: { ...node.attrs }, children: node.children.map((c: XmlNode) => (typeof c === "string" ? c : plain(c))) };
}
