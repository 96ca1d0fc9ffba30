/**
 * The device-id rule, the one place it is written (README "Device ids"): 1-64 of [A-Za-z0-9._-], less "."
 * and "..", matched without regard to case; the canonical spelling is the lower-case one. Case-insensitive
 * because the id is the local part of the device's JID, which XMPP compares case-insensitively (RFC 7622
 * §3.3, UsernameCaseMapped), and a DNS label under the Host suffix (RFC 4343): `DEV-17` and `dev-17` reach
 * the same agent, so they must share one registry entry, one in-flight limit and one idempotency space.
 * Every per-device key is made from the canonical spelling. "." and ".." are dot-segments (RFC 3986 §3.3)
 * that a client library or a proxy on the way may collapse, so a device by that name could be reached by
 * accident, or not at all.
 */

/** The characters of a device id and how many (a regular-expression source, for patterns that embed it). */
export const DEVICE_ID_CHARS = "[A-Za-z0-9._-]{1,64}";

/** The rule in words, for the messages that refuse an id. */
export const DEVICE_ID_RULE = "1-64 of [A-Za-z0-9._-]";

const DEVICE_ID = new RegExp(`^${DEVICE_ID_CHARS}$`);

/** The canonical spelling of `id`, in lower case, or undefined when `id` is not a device id. */
export function canonicalDeviceId(id: string): string | undefined {
  return DEVICE_ID.test(id) && id !== "." && id !== ".." ? id.toLowerCase() : undefined;
}

/** Whether `id` is a device id in any case (canonicalDeviceId). */
export function isDeviceId(id: string): boolean {
  return canonicalDeviceId(id) !== undefined;
}

/**
 * The canonical id, or `id` as given when it is no device id: a lookup by it then finds nothing, and an
 * entry written before ids were canonical keeps the spelling it was stored under.
 */
export function canonicalOrAsGiven(id: string): string {
  return canonicalDeviceId(id) ?? id;
}
