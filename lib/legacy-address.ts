import { isIPv4, isIPv6 } from "node:net";
import { el, findChild, type XmlElement } from "./xep0332/xml.js";

/**
 * A device's legacy address (`host:port`, what forward-proxy clients put in their absolute URIs), shared by
 * the gateway (registry, forward-proxy lookups) and the device agent (which announces its device's address).
 */

/**
 * The gateway's own extension namespace (XEP-0332 has no way to say "this device used to answer at
 * host:port"): an agent's directed presence to the gateway may carry
 * `<device xmlns='urn:xmpp-http-gateway:device:0' legacyAddress='10.0.0.17:8080'/>`.
 */
export const NS_DEVICE = "urn:xmpp-http-gateway:device:0";

/** An announced address longer than this is not looked at (a host name is at most 253, plus `:65535`). */
const MAX_ANNOUNCED_LENGTH = 300;

const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** The `<device/>` child of an agent's presence, announcing its device's legacy address. */
export function deviceAnnouncement(legacyAddress: string): XmlElement {
  return el("device", { xmlns: NS_DEVICE, legacyAddress });
}

/** The legacy address a presence stanza announces (as sent, not yet checked), or undefined when it has none. */
export function announcedLegacyAddress(presence: XmlElement): string | undefined {
  const value = findChild(presence, "device", NS_DEVICE)?.attrs.legacyAddress;
  return value === undefined || value.length > MAX_ANNOUNCED_LENGTH ? undefined : value;
}

/**
 * `host:port` in the one form the registry stores and looks up: host names lower-cased, IPv6 compressed
 * (`[0:0::1]:80` → `[::1]:80`), port without leading zeros. Undefined when `value` is not such an address.
 */
export function normalizeLegacyAddress(value: string): string | undefined {
  const match = /^(\[[^\]]*\]|[^:[\]]+):(\d{1,5})$/.exec(value);
  if (!match) return undefined;
  const [, host = "", portText = ""] = match;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  let canonical: string;
  if (host.startsWith("[")) {
    const inner = host.slice(1, -1);
    if (!isIPv6(inner) || inner.includes("%")) return undefined; // no zone ids (fe80::1%eth0)
    canonical = new URL(`http://[${inner}]/`).hostname;
  } else if (/^[0-9.]+$/.test(host)) {
    if (!isIPv4(host)) return undefined; // dotted decimal only: no octal, no short forms
    canonical = host;
  } else if (isHostName(host)) {
    canonical = host.toLowerCase();
  } else {
    return undefined;
  }
  return `${canonical}:${port}`;
}

/** An RFC 1123 host name (ASCII labels), not ending in an all-numeric label (which reads as an IPv4 form). */
export function isHostName(host: string): boolean {
  if (host.length > 253) return false;
  const labels = host.split(".");
  if (!labels.every((l) => HOST_LABEL.test(l))) return false;
  return !/^\d+$/.test(labels[labels.length - 1] ?? "");
}
