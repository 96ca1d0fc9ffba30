import { sameJid } from "../../lib/xmpp/jid.js";
import { canonicalDeviceId, DEVICE_ID_CHARS } from "./device-id.js";

/** DEVICE_JID_TEMPLATE both ways: device id → JID (as the resolver does), and JID → device id. */
export interface JidTemplate {
  jidFor(deviceId: string): string;
  /**
   * The device id whose template JID this full JID is, compared as XMPP compares (local part and domain
   * case-insensitive, resource exact); undefined when it is no device's template JID. The id is the
   * canonical one (canonicalDeviceId: lower case), as every per-device key is made from it.
   */
  deviceIdOf(jid: string): string | undefined;
}

/** The characters of a device id, at most 64 of them (canonicalDeviceId has the whole rule). */
const ID = `(${DEVICE_ID_CHARS})`;

/**
 * Compiles a template such as `{id}@devices.example.com/agent` or `meter-{id}@localhost/agent` (config.ts
 * checks its shape: `{id}` in the local part, a domain and a resource). Pure.
 */
export function compileJidTemplate(template: string): JidTemplate {
  const jidFor = (deviceId: string) => template.replaceAll("{id}", deviceId);
  const at = template.indexOf("@");
  const slash = template.indexOf("/", at + 1);
  const localTemplate = template.slice(0, Math.max(at, 0));
  if (at <= 0 || slash === -1 || !localTemplate.includes("{id}")) return { jidFor, deviceIdOf: () => undefined };
  const domain = template.slice(at + 1, slash).toLowerCase();
  const resource = template.slice(slash + 1);
  // `{id}` may appear more than once: the first occurrence captures, the others must repeat it.
  const [before = "", after = "", ...others] = localTemplate.split("{id}");
  const local = new RegExp(`^${escape(before)}${ID}${escape(after)}${others.map((part) => `\\1${escape(part)}`).join("")}$`, "i");

  return {
    jidFor,
    deviceIdOf(jid) {
      const jidAt = jid.indexOf("@");
      const jidSlash = jid.indexOf("/", jidAt + 1);
      if (jidAt <= 0 || jidSlash === -1) return undefined;
      if (jid.slice(jidSlash + 1) !== resource || jid.slice(jidAt + 1, jidSlash).toLowerCase() !== domain) return undefined;
      const captured = local.exec(jid.slice(0, jidAt))?.[1];
      const deviceId = captured === undefined ? undefined : canonicalDeviceId(captured);
      // The round trip is the proof: the id's own JID must be this one.
      return deviceId !== undefined && sameJid(jidFor(deviceId), jid) ? deviceId : undefined;
    },
  };
}

function escape(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");
}
