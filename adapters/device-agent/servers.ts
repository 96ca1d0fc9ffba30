import { Resolver } from "node:dns/promises";
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from "../../lib/backoff.js";

/**
 * Where the agent connects (AGENT_SERVICE): one or more comma-separated entries, tried in order.
 * `xmpp://host:port` (STARTTLS, RFC 6120 §5) and `xmpps://host:port` (TLS from the first byte, XEP-0368) name
 * one server; `xmpp-srv://domain` names a domain whose servers DNS lists (RFC 6120 §3.2.1), resolved again
 * at every full round of failures.
 */
export type ServiceEntry = { kind: "url"; url: string } | { kind: "srv"; domain: string };

export const SRV_SCHEME = "xmpp-srv:";
export const SERVICE_LIST_RULE =
  "must be one or more comma-separated xmpp://host:port, xmpps://host:port or xmpp-srv://domain entries, e.g. xmpp://a.example.com:5222,xmpp://b.example.com:5222";

/** The entries of an AGENT_SERVICE text; throws with the first bad entry. */
export function parseServiceList(text: string): ServiceEntry[] {
  const parts = text.split(",").map((p) => p.trim());
  if (parts.length === 0 || parts.some((p) => p === "")) throw new Error("has an empty entry");
  return parts.map((part) => {
    let url: URL;
    try {
      url = new URL(part);
    } catch {
      throw new Error(`entry ${JSON.stringify(part)} is not a URL`);
    }
    if (url.protocol === SRV_SCHEME) {
      // A domain only: a port or a path would be ignored, so they are refused rather than silently dropped.
      if (url.hostname === "" || url.port !== "" || (url.pathname !== "" && url.pathname !== "/") || url.username !== "")
        throw new Error(`entry ${JSON.stringify(part)} must be xmpp-srv://domain, with no port or path`);
      return { kind: "srv", domain: url.hostname };
    }
    if (url.protocol !== "xmpp:" && url.protocol !== "xmpps:") throw new Error(`entry ${JSON.stringify(part)} has an unknown scheme`);
    if (url.hostname === "") throw new Error(`entry ${JSON.stringify(part)} names no host`);
    return { kind: "url", url: part };
  });
}

/** True when the text parses as a service list (the setting's rule). */
export function isServiceList(text: string): boolean {
  try {
    parseServiceList(text);
    return true;
  } catch {
    return false;
  }
}

/** One SRV answer (node's dns.resolveSrv shape), tagged with the scheme its service name implies. */
export interface SrvRecord {
  name: string;
  port: number;
  priority: number;
  weight: number;
}

/**
 * RFC 2782's order: lowest priority first; within one priority, a weighted random draw without replacement
 * (records of weight 0 go first in the pool, so they are picked only when a draw lands on 0, rarely when
 * others have weight). `random` in [0, 1) is injectable so tests are deterministic.
 */
export function orderSrvRecords<R extends SrvRecord>(records: readonly R[], random: () => number = Math.random): R[] {
  const byPriority = new Map<number, R[]>();
  for (const r of records) byPriority.set(r.priority, [...(byPriority.get(r.priority) ?? []), r]);
  const ordered: R[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const pool = [...byPriority.get(priority)!].sort((a, b) => Number(a.weight !== 0) - Number(b.weight !== 0));
    while (pool.length > 0) {
      const total = pool.reduce((sum, r) => sum + r.weight, 0);
      // "a uniform random number between 0 and the sum" (inclusive); the first record whose running sum is
      // at least that number is the next one.
      const draw = Math.floor(random() * (total + 1));
      let running = 0;
      let index = pool.findIndex((r) => (running += r.weight) >= draw);
      if (index < 0) index = pool.length - 1;
      ordered.push(pool.splice(index, 1)[0]!);
    }
  }
  return ordered;
}

/**
 * The services a domain's SRV records name (RFC 6120 §3.2.1): `_xmpps-client._tcp` records become xmpps://
 * (XEP-0368) and `_xmpp-client._tcp` ones xmpp://, ordered together as one RFC 2782 set (XEP-0368 §3). A single
 * record with target "." says the service is decidedly not offered (RFC 2782): that set contributes nothing.
 * Neither set present: the domain itself on 5222 (RFC 6120 §3.2.2, its A/AAAA records).
 */
export function srvServices(
  domain: string,
  found: { xmpps: readonly SrvRecord[] | undefined; xmpp: readonly SrvRecord[] | undefined },
  random: () => number = Math.random,
): string[] {
  if (found.xmpps === undefined && found.xmpp === undefined) return [`xmpp://${hostPart(domain)}:5222`];
  const usable = (records: readonly SrvRecord[] | undefined) =>
    records === undefined || (records.length === 1 && (records[0]!.name === "." || records[0]!.name === "")) ? [] : records;
  const tagged = [
    ...usable(found.xmpps).map((r) => ({ ...r, scheme: "xmpps" })),
    ...usable(found.xmpp).map((r) => ({ ...r, scheme: "xmpp" })),
  ];
  return orderSrvRecords(tagged, random).map((r) => `${r.scheme}://${hostPart(r.name.replace(/\.$/, ""))}:${r.port}`);
}

function hostPart(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** How SRV records are looked up: node's resolver, or a fake in tests. */
export type SrvLookup = (name: string) => Promise<SrvRecord[]>;

/**
 * One SRV set, or undefined when there is none. A lookup that fails for another reason (a server failure, a
 * timeout) counts as none too: RFC 6120 §3.2.1 falls back to the domain's own address when SRV resolution
 * fails, and an agent that stopped retrying over a DNS hiccup would be worse.
 */
async function lookupSet(lookup: SrvLookup, name: string): Promise<SrvRecord[] | undefined> {
  try {
    return await lookup(name);
  } catch {
    return undefined;
  }
}

/**
 * The candidate list of one round: URL entries as they are, SRV entries resolved now. Without `directTls`
 * (TLS off: plain text only) the `_xmpps-client._tcp` records are not asked for.
 */
export async function resolveServices(
  entries: readonly ServiceEntry[],
  lookup: SrvLookup = (name) => new Resolver().resolveSrv(name),
  { directTls = true }: { directTls?: boolean } = {},
): Promise<string[]> {
  const out: string[] = [];
  for (const entry of entries) {
    if (entry.kind === "url") {
      out.push(entry.url);
      continue;
    }
    const [xmpps, xmpp] = await Promise.all([
      directTls ? lookupSet(lookup, `_xmpps-client._tcp.${entry.domain}`) : undefined,
      lookupSet(lookup, `_xmpp-client._tcp.${entry.domain}`),
    ]);
    out.push(...srvServices(entry.domain, { xmpps, xmpp }));
  }
  // Every domain said "decidedly not offered" ("." targets): its own address is tried, so the agent keeps
  // retrying with backoff, and resolving again each round, until DNS names a server.
  if (out.length === 0)
    for (const e of entries) if (e.kind === "srv") out.push(srvServices(e.domain, { xmpps: undefined, xmpp: undefined })[0]!);
  return [...new Set(out)];
}

/** True when `service` (AGENT_SERVICE's text) names a server that is TLS from the first byte (xmpps://). */
export function hasDirectTlsEntry(service: string): boolean {
  return service.split(",").some((s) => /^\s*xmpps:/i.test(s));
}

/** True when `service` (AGENT_SERVICE's text) has an xmpp-srv:// entry. */
export function hasSrvEntry(service: string): boolean {
  return service.split(",").some((s) => /^\s*xmpp-srv:/i.test(s));
}

/**
 * Which server to try next, and after how long. A failed attempt, or the loss of a working connection,
 * moves on to the next server after a short jittered pause (up to the backoff's first delay: another
 * server is worth trying at once, but a fleet must not arrive there in lock-step). Once every server of the
 * list has failed in a row (a full round), the next round starts from the top of the list after the
 * exponential backoff of lib/backoff.ts, which grows with each failed round and is reset by a success.
 *
 * The server that worked is kept while it works; when it drops the connection, it goes to the end of the
 * order: a dropped session most often means that server (or its cluster node) went away, and the others
 * are there to take over. With a single server this is exactly a reconnect with backoff on every failure.
 */
export class ServerRotation {
  private list: string[] = [];
  private index = 0;
  private failedInRound = 0;
  private readonly rounds: Backoff;
  private readonly step: Backoff;

  constructor(opts: BackoffOptions = DEFAULT_BACKOFF) {
    this.rounds = new Backoff(opts);
    this.step = new Backoff({ ...opts, maxMs: opts.initialMs });
  }

  /** A fresh candidate list (at start, and after each failed round): tried from its top. */
  load(list: readonly string[]): void {
    if (list.length === 0) throw new Error("no server to connect to");
    this.list = [...list];
    this.index = 0;
    this.failedInRound = 0;
  }

  get servers(): readonly string[] {
    return this.list;
  }

  /** The server the next (or current) attempt goes to. */
  get current(): string {
    return this.list[this.index]!;
  }

  /** The current server is online: it stays first, and the backoff starts over. */
  succeeded(): void {
    this.failedInRound = 0;
    this.rounds.reset();
  }

  /**
   * The current attempt failed, or its connection was lost: the delay before the next attempt, and
   * whether a full round has failed (the caller then resolves the list again and `load`s it).
   */
  failed(): { delayMs: number; roundOver: boolean } {
    this.failedInRound++;
    if (this.failedInRound >= this.list.length) {
      this.failedInRound = 0;
      this.index = 0;
      return { delayMs: this.rounds.next(), roundOver: true };
    }
    this.index = (this.index + 1) % this.list.length;
    return { delayMs: this.step.next(), roundOver: false };
  }

  /** Failed rounds since the last success (for log lines). */
  get failedRounds(): number {
    return this.rounds.attempts;
  }
}
