import { isElement, type XmlElement, type XmlNode } from "../../lib/xep0332/xml.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";
import type { RedisStore } from "../redis/client.js";
import type { RedisSubscriber } from "../redis/subscriber.js";

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
  private readonly subscriber: RedisSubscriber;
  private readonly departures: string;

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
    this.departures = redis.keys.departures();
    this.subscriber = redis.subscriber(logger.child({ component: "reply-bus" }));
    const { onForwarded, onDeparture } = handlers;
    if (onForwarded) this.subscriber.listen(redis.keys.replyChannel(instanceId), (message) => receive(message, onForwarded));
    if (onDeparture) {
      this.subscriber.listen(this.departures, (departed) => {
        if (departed !== instanceId) onDeparture(departed);
      });
    }
  }

  start(): Promise<void> {
    return this.subscriber.start();
  }

  stop(): Promise<void> {
    return this.subscriber.stop();
  }

  /** Publishes a stanza to its owner; false when no instance listens there (the owner is gone). */
  async forward(owner: string, stanza: XmlElement): Promise<boolean> {
    const receivers = await this.redis.publish(this.redis.keys.replyChannel(owner), JSON.stringify(plain(stanza)));
    return receivers > 0;
  }

  /** Tells the other instances that this one's component connection closed (after it did). */
  async announceDeparture(): Promise<void> {
    await this.redis.publish(this.departures, this.instanceId);
  }
}

/** A forwarded stanza, as published by `forward`; anything else on the channel is ignored. */
function receive(message: string, handler: ForwardedHandler): void {
  let stanza: unknown;
  try {
    stanza = JSON.parse(message);
  } catch {
    return;
  }
  if (isElement(stanza)) handler(stanza);
}

/** The tree without ltx's back-references (`parent`), which JSON cannot hold. */
export function plain(node: XmlElement): XmlElement {
  return { name: node.name, attrs: { ...node.attrs }, children: node.children.map((c: XmlNode) => (typeof c === "string" ? c : plain(c))) };
}
