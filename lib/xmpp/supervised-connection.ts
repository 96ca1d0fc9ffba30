import type { XmlElement } from "../xep0332/xml.js";
import { toLibraryElement, type XmlFactory } from "./elements.js";
import type { ConnectionSupervisor } from "./supervisor.js";

/**
 * What the gateway's component facade and the agent's client facade share: a lifecycle run by the
 * supervisor, and sending the codec's neutral stanzas as the library's own elements.
 */
export abstract class SupervisedConnection<E> {
  protected constructor(
    private readonly supervisor: ConnectionSupervisor,
    private readonly xml: XmlFactory<E>,
    private readonly write: (element: E) => Promise<unknown>,
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
      await this.write(this.toElement(node));
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  /** The error a caller gets when a stanza cannot be sent. */
  protected abstract unavailable(cause?: unknown): Error;

  protected toElement(node: XmlElement): E {
    return toLibraryElement(this.xml, node);
  }
}
