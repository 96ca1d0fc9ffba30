import { isIPv6 } from "node:net";

/** What the Host rules read of a request head (an IncomingMessage has all of it). */
export interface HostedRequest {
  httpVersionMajor: number;
  httpVersionMinor: number;
  /** The raw request target. */
  url?: string | undefined;
  /** Names and values as received, in order, repeats kept (Node's `rawHeaders`). */
  rawHeaders: readonly string[];
}

/** RFC 9112 §3.2.2 absolute-form with an authority (`http://host/...`): the target names the host itself. */
const ABSOLUTE_WITH_AUTHORITY = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
/** RFC 3986 §3.2.2 uri-host, then an optional `:` port: `[IP-literal]`, or anything else up to the colon. */
const HOST_AND_PORT = /^(\[[^\]]*\]|[^:[\]]*)(?::([^:]*))?$/;
/** RFC 3986 reg-name (IPv4address is one too): unreserved, pct-encoded and sub-delims. */
const REG_NAME = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$/;
/** RFC 3986 IPvFuture, inside the brackets. */
const IP_FUTURE = /^[vV][0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+$/;

/**
 * Why a request's Host header is refused, or undefined when it is acceptable. RFC 9112 §3.2: "A server MUST
 * respond with a 400 (Bad Request) status code to any HTTP/1.1 request message that lacks a Host header field
 * and to any request message that contains more than one Host header field line or a Host header field with
 * an invalid field value." Two lines matter most with Host addressing: Node keeps the first, a proxy in front
 * may route on the last, and the two would then disagree on the device.
 *
 * The value is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2): an IP literal in brackets, or a
 * reg-name (which covers IPv4), then a port of at most 5 digits, 1-65535 (an empty port is allowed by the
 * grammar and means the default). No user info, no spaces, nothing else.
 *
 * An empty value is what a client sends for a target URI without an authority (RFC 9112 §3.2). An http
 * request in origin form always has one (RFC 9110 §4.2.1: an http URI with an empty host is invalid), so
 * an empty Host is refused there. In absolute form the target's own authority is the host and Host is
 * ignored (RFC 9112 §3.2.2): it must still be a single valid line, but may be empty. HTTP/1.0 may omit Host.
 */
export function hostHeaderProblem(req: HostedRequest): string | undefined {
  const values: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]?.toLowerCase() === "host") values.push(req.rawHeaders[i + 1] ?? "");
  }
  if (values.length > 1) return `the request has ${values.length} Host header lines; at most one is allowed (RFC 9112 §3.2)`;
  const [value] = values;
  if (value === undefined) {
    const needsHost = req.httpVersionMajor > 1 || (req.httpVersionMajor === 1 && req.httpVersionMinor >= 1);
    return needsHost ? "an HTTP/1.1 request needs a Host header (RFC 9112 §3.2)" : undefined;
  }
  const host = value.replace(/^[ \t]+|[ \t]+$/g, "");
  if (host === "") {
    return ABSOLUTE_WITH_AUTHORITY.test(req.url ?? "") ? undefined : "the Host header is empty; it must name the host (RFC 9110 §7.2)";
  }
  const problem = hostValueProblem(host);
  return problem === undefined ? undefined : `Host ${show(host)} is not host[:port]: ${problem} (RFC 9110 §7.2)`;
}

/** What is wrong with a non-empty Host value, or undefined when it is `uri-host [ ":" port ]`. */
export function hostValueProblem(value: string): string | undefined {
  if (value.includes("@")) return "user info is not allowed";
  const match = HOST_AND_PORT.exec(value);
  if (!match) return "it has more than one colon outside brackets, or stray brackets";
  const [, host = "", port] = match;
  if (host === "") return "the host is empty";
  if (host.startsWith("[")) {
    const literal = host.slice(1, -1);
    if (!(isIPv6(literal) && !literal.includes("%")) && !IP_FUTURE.test(literal)) return "the bracketed host is not an IPv6 address";
  } else if (!REG_NAME.test(host)) {
    return "the host has characters a host name cannot have";
  }
  if (port !== undefined && port !== "" && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    return "the port is not 1-65535";
  }
  return undefined;
}

/** Client input in a message: quoted, and cut short. */
function show(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}
