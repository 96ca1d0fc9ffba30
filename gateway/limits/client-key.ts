import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";

/**
 * Who a client is, for the per-client rate limit (GATEWAY_CLIENT_KEY):
 * - `ip`: the address of the TCP peer. Behind a load balancer that is the balancer: use the next mode.
 * - `x-forwarded-for`: the right-most address of X-Forwarded-For, the one the nearest proxy (your load
 *   balancer) appended; addresses further left are the client's own claims and not trusted.
 * - `header:<name>`: a tenant or API-key header set by the client or an upstream authenticator; requests
 *   without it fall back to the peer address, so leaving it out does not escape the limit.
 */
export type ClientKeyMode = { kind: "ip" } | { kind: "x-forwarded-for" } | { kind: "header"; name: string };

export function parseClientKeyMode(value: string): ClientKeyMode | undefined {
  if (value === "ip" || value === "x-forwarded-for") return { kind: value };
  const m = /^header:([!#$%&'*+.^_`|~0-9A-Za-z-]+)$/.exec(value); // a field name (RFC 9110 §5.1)
  return m?.[1] ? { kind: "header", name: m[1].toLowerCase() } : undefined;
}

/**
 * The client's key, hashed: a bounded Redis key whatever the header holds, and no API key in clear in
 * Redis. The prefix keeps an address and a header value that happen to be equal apart.
 */
export function clientKey(req: IncomingMessage, mode: ClientKeyMode): string {
  return createHash("sha256").update(rawClientKey(req, mode)).digest("base64url").slice(0, 22);
}

function rawClientKey(req: IncomingMessage, mode: ClientKeyMode): string {
  const peer = `ip:${req.socket.remoteAddress ?? "unknown"}`;
  if (mode.kind === "ip") return peer;
  if (mode.kind === "x-forwarded-for") {
    const forwardedFor = req.headers["x-forwarded-for"];
    const list = Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor;
    const last = list?.split(",").at(-1)?.trim();
    return last ? `ip:${last}` : peer;
  }
  const value = req.headers[mode.name];
  const given = Array.isArray(value) ? value[0] : value;
  return given ? `h:${given}` : peer;
}
