import { sameJid } from "../../lib/xmpp/jid.js";
import { normalizeLegacyAddress } from "../../lib/legacy-address.js";
import { isGatewayError } from "../errors.js";
import { compileJidTemplate, type JidTemplate } from "../registry/jid-template.js";
import { LegacyAddressConflict, type DeviceStore } from "../registry/redis-registry.js";

/** What recording an announced legacy address needs: the registry, and how a JID leads to its device. */
export interface LegacyAddressDeps {
  registry: Pick<DeviceStore, "get" | "upsert">;
  /** DEVICE_JID_TEMPLATE: how a presence's JID leads back to its device id. */
  jidTemplate: string;
}

export type LegacyAddressResult =
  /** Written: the entry's legacyAddress changed. */
  | "recorded"
  /** The entry already says so: nothing written. */
  | "unchanged"
  /** Another device owns the address: nothing written (the registry refuses to move it). */
  | "conflict"
  /** Not this recorder's to write (see `reason`). */
  | "ignored"
  /** The registry failed (Redis): the agent's next announcement tries again. */
  | "failed";

export interface LegacyAddressOutcome {
  result: LegacyAddressResult;
  /** The full JID that announced it. */
  jid: string;
  /** As announced; normalized when it is a valid address. */
  legacyAddress: string;
  deviceId?: string;
  /** Why it was ignored, who owns it (conflict), or what failed. */
  reason?: string;
}

/**
 * Records the legacy address a device agent announces in its presence (`<device xmlns='urn:xmpp-http-gateway:device:0'
 * legacyAddress='host:port'/>`) as its registry entry's `legacyAddress`, so forward-proxy requests to that
 * address reach it. The announcement comes from the device side, and whoever holds an address receives the
 * forward-proxy traffic legacy clients send to it: so an address is taken only where an operator allowed it.
 *
 * - Only for a device with a registry entry that says `acceptAnnouncedAddress: true`. Without an entry
 *   nothing is created (an agent cannot register itself, whatever DEFAULT_TRANSPORT says); without the flag
 *   the entry's own `legacyAddress`, set by an operator (admin API, devices file), is the only one: an
 *   announcement of it is `unchanged`, any other is ignored.
 * - Only template JIDs: the device id is read back from DEVICE_JID_TEMPLATE. Entries with an explicit `jid`
 *   are not found from their JID (that would take a JID index in the registry, or a scan of every entry on
 *   every presence); give those devices their `legacyAddress` through the admin API.
 * - Only when the entry's transport is `xmpp` and its JID (its own `jid`, else the template's) is the one
 *   announcing; an `http` entry is not reached through this agent, and keeps what the admin set.
 * - Written only when it changes; an address another device owns is never taken (the registry refuses it
 *   atomically, and the outcome is `conflict`).
 *
 * Known limit: the entry is read, then written whole, so an admin change landing between the two (within
 * milliseconds of an address change, which is rare: agents announce the same address every minute) is lost.
 */
export class LegacyAddressRecorder {
  private readonly template: JidTemplate;

  constructor(private readonly deps: LegacyAddressDeps) {
    this.template = compileJidTemplate(deps.jidTemplate);
  }

  /** Never throws: every failure is an outcome. */
  async record(jid: string, announced: string): Promise<LegacyAddressOutcome> {
    const legacyAddress = normalizeLegacyAddress(announced);
    if (legacyAddress === undefined)
      return { result: "ignored", jid, legacyAddress: announced, reason: "not host:port (IPv4, [IPv6] or a host name; port 1-65535)" };
    const deviceId = this.template.deviceIdOf(jid);
    if (deviceId === undefined) {
      return {
        result: "ignored",
        jid,
        legacyAddress,
        reason: "not a DEVICE_JID_TEMPLATE JID: set this device's legacyAddress through the admin API",
      };
    }
    const base = { jid, legacyAddress, deviceId };
    try {
      const entry = await this.deps.registry.get(deviceId);
      if (entry === undefined)
        return {
          ...base,
          result: "ignored",
          reason: "no registry entry: an agent cannot register itself (register the device, with acceptAnnouncedAddress)",
        };
      if (entry.transport !== "xmpp") return { ...base, result: "ignored", reason: `the entry's transport is ${entry.transport}` };
      const entryJid = entry.jid ?? this.template.jidFor(deviceId);
      if (!sameJid(entryJid, jid)) return { ...base, result: "ignored", reason: `the entry's JID is ${entryJid}` };
      if (entry.legacyAddress === legacyAddress) return { ...base, result: "unchanged" };
      if (entry.acceptAnnouncedAddress !== true) {
        return {
          ...base,
          result: "ignored",
          reason: `the entry does not take announced addresses (acceptAnnouncedAddress); its legacyAddress is ${entry.legacyAddress ?? "unset"}`,
        };
      }
      await this.deps.registry.upsert({ ...entry, legacyAddress }, { existing: true });
      return { ...base, result: "recorded" };
    } catch (err) {
      if (err instanceof LegacyAddressConflict) return { ...base, result: "conflict", reason: `owned by device ${err.owner}` };
      return { ...base, result: "failed", reason: isGatewayError(err) ? err.code : (err as Error).message };
    }
  }
}
