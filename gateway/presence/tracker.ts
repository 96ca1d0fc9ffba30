import { announcedLegacyAddress } from "../../lib/legacy-address.js";
import type { XmlElement } from "../../lib/xep0332/xml.js";
import type { Logger } from "../log.js";
import { LegacyAddressRecorder, type LegacyAddressDeps, type LegacyAddressOutcome } from "./legacy-address.js";
import type { PresenceStore } from "./presence-store.js";

/**
 * Turns the presence stanzas devices send to the component (RFC 6121 §4.6 directed presence; the server
 * sends `unavailable` for them when the device's session ends) into the shared presence store, and tells
 * listeners when a device comes online (the offline queue delivers then). An available presence may also
 * announce the device's legacy address (`<device xmlns='urn:xmpp-http-gateway:device:0' legacyAddress='…'/>`):
 * with `legacyAddresses` given, it is recorded in the registry (LegacyAddressRecorder says when and why not);
 * without, it is ignored.
 */
export class PresenceTracker {
  private readonly addressListeners: Array<(outcome: LegacyAddressOutcome) => void> = [];
  private readonly log: Logger;
  private readonly recorder: LegacyAddressRecorder | undefined;

  /** `onAvailable`: a device came online (its presence is stored by then). */
  constructor(
    private readonly store: Pick<PresenceStore, "available" | "unavailable">,
    logger: Logger,
    legacyAddresses?: LegacyAddressDeps,
    private readonly onAvailable: (jid: string) => void = () => undefined,
  ) {
    this.log = logger.child({ component: "presence" });
    this.recorder = legacyAddresses ? new LegacyAddressRecorder(legacyAddresses) : undefined;
  }

  /** Called with what became of each announced legacy address (only when the tracker records them). */
  onLegacyAddress(listener: (outcome: LegacyAddressOutcome) => void): void {
    this.addressListeners.push(listener);
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
        () => this.onAvailable(from),
        (err: unknown) => this.log.warn({ event: "presence-not-stored", jid: from, err: (err as Error).message }, "presence not stored"),
      );
      const announced = announcedLegacyAddress(stanza);
      if (announced !== undefined && this.recorder) {
        this.recorder.record(from, announced).then(
          (outcome) => this.recorded(outcome),
          (err: unknown) =>
            this.log.warn({ event: "legacy-address-failed", jid: from, err: (err as Error).message }, "legacy address not recorded"),
        );
      }
    } else if (type === "unavailable") {
      this.store
        .unavailable(from)
        .catch((err: unknown) =>
          this.log.warn({ event: "presence-not-stored", jid: from, err: (err as Error).message }, "presence not stored"),
        );
    }
  }

  private recorded(outcome: LegacyAddressOutcome): void {
    const { result, ...fields } = outcome;
    const line = { event: `legacy-address-${result}`, ...fields };
    if (result === "recorded") this.log.info(line, "legacy address recorded");
    else if (result === "conflict") this.log.warn(line, "legacy address not recorded: another device owns it");
    else if (result === "failed") this.log.warn(line, "legacy address not recorded");
    else if (result === "ignored") this.log.debug(line, "legacy address ignored");
    for (const l of this.addressListeners) {
      try {
        l(outcome);
      } catch (err) {
        this.log.warn({ event: "legacy-address-listener-failed", err: (err as Error).message }, "legacy address listener failed");
      }
    }
  }
}
