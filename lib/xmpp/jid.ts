/**
 * JID comparison as servers do it for the ASCII addresses used here (RFC 7622 §3.2-3.4): the localpart and
 * domain are case-insensitive (Prosody lower-cases `Dev-17@Localhost`), the resourcepart is compared exactly.
 * A device id `Dev-17` therefore answers from `dev-17@localhost/agent`, and that must still match.
 */
export function normalizeJid(jid: string): string {
  const slash = jid.indexOf("/");
  const bare = slash === -1 ? jid : jid.slice(0, slash);
  const resource = slash === -1 ? "" : jid.slice(slash);
  return bare.toLowerCase() + resource;
}

export function sameJid(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && normalizeJid(a) === normalizeJid(b);
}

export function bareJid(jid: string): string {
  const slash = jid.indexOf("/");
  return (slash === -1 ? jid : jid.slice(0, slash)).toLowerCase();
}
