import { tag, type RedisKeys } from "../redis/keys.js";

/**
 * The persistent keys of the release before hash tags (README, "Redis keys, and Redis Cluster"), and the name
 * each has now. Everything else the earlier release wrote is short-lived (exchanges in flight, chunk routing,
 * in-flight slots, rate limits, presence, drain locks) and is not moved: it expires on its own, and the new
 * release starts those afresh.
 */
export type Family = "device" | "devices" | "legacy" | "idem" | "queue" | "queuebytes" | "queued" | "queuedbytes" | "request" | "shadow";

/** How the keys of one family are found under the old prefix. */
export interface FamilyScan {
  family: Family;
  /**
   * `exact`: one key (the rest of its name is empty); `scan`: SCAN with MATCH `pattern` (a Redis glob, the
   * old prefix escaped), whose matches mapOldKey still checks one by one.
   */
  kind: "exact" | "scan";
  pattern: string;
  /** Whether the name stays the same (apart from the prefix): then an in-place run with one prefix has nothing to do. */
  sameName: boolean;
}

export type KeyMapping =
  | { family: Family; newKey: string }
  /** A key the scan met that is not of the old layout: a key of the new one, or one no release wrote. */
  | { family: Family; skip: string };

/** Where old names begin after the prefix; `[^{]`: a device id or a legacy address never starts with `{`, a new key always does. */
const FAMILIES: ReadonlyArray<{ family: Family; kind: "exact" | "scan"; name: string; glob: string; sameName: boolean }> = [
  { family: "device", kind: "scan", name: "device:", glob: "[^{]*", sameName: false },
  { family: "devices", kind: "exact", name: "devices", glob: "", sameName: true },
  { family: "legacy", kind: "scan", name: "legacy:", glob: "[^{]*", sameName: false },
  { family: "idem", kind: "scan", name: "idem:", glob: "[^{]*", sameName: false },
  // A JID may start with `{`: every key is looked at, and mapOldKey tells the two layouts apart.
  { family: "queue", kind: "scan", name: "queue:", glob: "*", sameName: false },
  { family: "queuebytes", kind: "scan", name: "queuebytes:", glob: "*", sameName: false },
  { family: "queued", kind: "exact", name: "queued", glob: "", sameName: false },
  { family: "queuedbytes", kind: "exact", name: "queuedbytes", glob: "", sameName: false },
  { family: "request", kind: "scan", name: "request:", glob: "*", sameName: true },
  { family: "shadow", kind: "exact", name: "shadow:mismatches", glob: "", sameName: true },
];

/** The earlier release's single presence set: not moved (presence starts afresh), deleted with --delete-old. */
export function oldOnlineKey(fromPrefix: string): string {
  return `${fromPrefix}online`;
}

/** The families in the order they are moved, with how each is found under `fromPrefix`. */
export function familyScans(fromPrefix: string): FamilyScan[] {
  return FAMILIES.map(({ family, kind, name, glob, sameName }) => ({
    family,
    kind,
    pattern: kind === "exact" ? fromPrefix + name : escapeGlob(fromPrefix + name) + glob,
    sameName,
  }));
}

/**
 * The new name of a key the earlier release wrote under `fromPrefix`, built by the gateway's own RedisKeys
 * (with the target's prefix), or why it is skipped; undefined when the key is of no persistent family.
 *
 * The earlier release built its names as `<prefix><family>:<value>`, the value as it came (device ids are
 * canonical, JIDs normalized, legacy addresses normalized); this release puts the value in a hash tag
 * (keys.ts, tag()). A key whose value is already in the form tag() produces is of the new layout, and is
 * skipped: that is what makes a second run, or a run after the new release has written, move nothing.
 * Device ids (device-id.ts) and legacy addresses (lib/legacy-address.ts) never hold `{`, so for them the
 * test is exact. A JID's local part may hold braces (RFC 7622 §3.3): a JID whose normalized form is itself
 * in tag form, such as `{x@example.com/y}`, named its old queue exactly as the new layout names the queue
 * of `x@example.com/y`, so it is taken as that (and not moved); any other JID with braces is moved.
 */
export function mapOldKey(key: string, fromPrefix: string, to: RedisKeys): KeyMapping | undefined {
  if (!key.startsWith(fromPrefix)) return undefined;
  const name = key.slice(fromPrefix.length);
  for (const { family, kind, name: familyName } of FAMILIES) {
    if (kind === "exact") {
      if (name === familyName) return { family, newKey: exactKey(family, to) };
      continue;
    }
    if (!name.startsWith(familyName)) continue;
    const value = name.slice(familyName.length);
    if (value === "") return { family, skip: "no value after the family name" };
    switch (family) {
      case "device":
        return value.startsWith("{") ? newLayout(family) : { family, newKey: to.device(value) };
      case "legacy":
        return value.startsWith("{") ? newLayout(family) : { family, newKey: to.legacyIndex(value) };
      case "idem": {
        if (value.startsWith("{")) return newLayout(family);
        // `<device id>:<hash of the key>`; a device id holds no `:`.
        const colon = value.indexOf(":");
        if (colon <= 0 || colon === value.length - 1) return { family, skip: "not <device id>:<hash>" };
        return { family, newKey: to.idempotency(value.slice(0, colon), value.slice(colon + 1)) };
      }
      case "queue":
        return isTagged(value) ? newLayout(family) : { family, newKey: to.offlineQueue(value) };
      case "queuebytes":
        return isTagged(value) ? newLayout(family) : { family, newKey: to.offlineQueueBytes(value) };
      case "request":
        return { family, newKey: to.asyncRequest(value) };
      default:
        return undefined;
    }
  }
  return undefined;
}

function exactKey(family: Family, to: RedisKeys): string {
  switch (family) {
    case "devices":
      return to.devices();
    case "queued":
      return to.offlineQueuedTotal();
    case "queuedbytes":
      return to.offlineQueuedBytesTotal();
    case "shadow":
      return to.shadowMismatches();
    default:
      throw new Error(`family ${family} is not one key`);
  }
}

function newLayout(family: Family): KeyMapping {
  return { family, skip: "new layout" };
}

/** Whether `value` is what tag() makes of some value (with or without the `\` tag() may put in front). */
export function isTagged(value: string): boolean {
  if (!value.startsWith("{") || !value.endsWith("}") || value.length < 2) return false;
  const inner = value.slice(1, -1);
  return tag(inner) === value || (inner.startsWith("\\") && tag(inner.slice(1)) === value);
}

/** `text` as a Redis glob that matches it literally (util.c stringmatchlen: `\` escapes the next byte). */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
