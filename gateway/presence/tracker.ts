import type { XmlElement } from "../../adapters/xep0332/xml.js";
import type { Logger } from "../log.js";
import type { PresenceStore } from "./presence-store.js";

/**
 * Turns the presence stanzas devices send to the component (RFC 6121 §4.6 directed presence; the server
 * sends `unavailable` for them when the device's session ends) into the shared presence store, and tells
 * listeners when a device comes online (the offline queue delivers then).
 */
export class PresenceTracker {
  private readonly listeners: Array<(jid: string) => void> = [];
  private readonly log: Logger;

  constructor(private readonly store: PresenceStore, logger: Logger) {
    this.log = logger.child({ component: "presence" });
  }

  onAvailable(listener: (jid: string) => void): void {
    this.listeners.push(listener);
  }

  /** Handles one stanza; anything that is not device presence is ignored. */
  handle(stanza: XmlElement): void {
    if (stanza.name !== "presence") return;
    const from = stanza.attrs.from;
    // A bare JID is not an agent's session, and errors/probes/subscriptions are not availability.
    if (!from || !from.includes("/")) return;
    const type = stanza.attrs.type;
    if (type === undefined || type === "available") {
      this.store.available(from).then(
        () => {
          for (const l of this.listeners) l(from);
        },
        (err: unknown) => this.log.warn({ event: "presence-not-stored", jid: from, err: (err as Error).message }, "presence not stored"),
      );
    } else if (type === "unavailable") {
      this.store.unavailable(from).catch((err: unknown) => this.log.warn({ event: "presence-not-stored", jid: from, err: (err as Error).message }, "presence not stored"));
    }
  }
}
