/**
 * JID comparison as servers do it for the ASCII addresses used here (RFC 7622 §3.2-3.4): the localpart and
 * domain are case-insensitive (Prosody lower-cases `Dev-17@Localhost`), the resourcepart is compared exactly.
 * A device id `Dev-17` therefore answers from `dev-17@localhost/agent`, and that must still match.
 */
export function normalizeJid(jid: string): string {
  const slash = jid.indexOf("/");
  const bare = slash === -1 ? jid : jid.slice(0, slash);
  const lower = bare.toLowerCase();
  // Every exchange normalizes its JID several times (keys, pending, the reply's sender), nearly always one
  // already in lower case: then the JID itself, with no new string.
  if (lower === bare) return jid;
  return slash === -1 ? lower : lower + jid.slice(slash);
}

export function sameJid(a: string | undefined, b: string | undefined): boolean {
  return a !== undefined && b !== undefined && (a === b || normalizeJid(a) === normalizeJid(b));
}

export function bareJid(jid: string): string {
  const slash = jid.indexOf("/");
  return (slash === -1 ? jid : jid.slice(0, slash)).toLowerCase();
}
