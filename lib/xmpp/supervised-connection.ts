import type { XmlElement } from "../xep0332/xml.js";
import { toLibraryElement, type XmlFactory } from "./elements.js";
import type { ConnectionSupervisor } from "./supervisor.js";

/**
 * What the gateway's component facade and the agent's client facade share: a lifecycle run by the
 * supervisor, and sending the codec's neutral stanzas (each facade says how: `write`).
 */
export abstract class SupervisedConnection<E> {
  protected constructor(
    private readonly supervisor: ConnectionSupervisor,
    private readonly xml: XmlFactory<E>,
    private readonly write: (node: XmlElement) => Promise<unknown>,
  ) {}

  get online(): boolean {
    return this.supervisor.online;
  }

  /** Starts connecting; retries go on in the background until `stop()`. */
  async start(): Promise<void> {
    await this.supervisor.start();
  }

  waitOnline(timeoutMs: number): Promise<void> {
    return this.supervisor.waitOnline(timeoutMs);
  }

  async stop(): Promise<void> {
    await this.supervisor.stop();
  }

  /** Sends one stanza; refuses at once when not connected: nothing is queued for later. */
  async send(node: XmlElement): Promise<void> {
    if (!this.supervisor.online) throw this.unavailable();
    try {
      await this.write(node);
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  /** The error a caller gets when a stanza cannot be sent. */
  protected abstract unavailable(cause?: unknown): Error;

  /** The library's own element for `node`: what its IQ handlers must return. */
  protected toElement(node: XmlElement): E {
    return toLibraryElement(this.xml, node);
  }
}
