import { randomBytes } from "node:crypto";

/**
 * Correlation and stream ids: 96 random bits, so a device (or anyone on the XMPP server) cannot guess
 * another exchange's id to slip in a reply; the sender check is the second guard.
 */
export function newId(): string {
  return randomBytes(12).toString("base64url");
}
