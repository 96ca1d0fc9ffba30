import { NS_SHIM } from "./constants.js";
import { CodecError } from "./errors.js";
import { childElements, el, textOf, type XmlElement } from "./xml.js";

/** Header list in wire order; repeated names stay separate entries (XEP-0131 allows repeats). */
export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

/** RFC 9110 §5.1: field-name = token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9110 §5.5: field-value is VCHAR, SP, HTAB and obs-text; no CR, LF or NUL (header injection). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * RFC 9110 §7.6.1: connection-specific fields are not forwarded by an intermediary, nor are the fields
 * that the Connection header names. Content-Length is recomputed by whoever writes the body.
 */
const HOP_BY_HOP = new Set([
  "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
  "te", "trailer", "transfer-encoding", "upgrade",
]);

export function isLegalHeader(name: string, value: string): boolean {
  return TOKEN.test(name) && FIELD_VALUE.test(value);
}

/** Drops hop-by-hop headers and any header the Connection header lists. Order of the rest is kept. */
export function stripHopByHop(headers: HeaderList): Array<[string, string]> {
  const named = new Set<string>();
  for (const [name, value] of headers) {
    if (name.toLowerCase() !== "connection") continue;
    for (const token of value.split(",")) {
      const t = token.trim().toLowerCase();
      if (t) named.add(t);
    }
  }
  return headers
    .filter(([name]) => {
      const n = name.toLowerCase();
      // DESIGN §4 promises Proxy-* as a family, not just the three names in HOP_BY_HOP.
      return !HOP_BY_HOP.has(n) && !n.startsWith("proxy-") && !named.has(n);
    })
    .map(([n, v]) => [n, v]);
}

/** First value of a header, case-insensitively. */
export function headerValue(headers: HeaderList, name: string): string | undefined {
  const wanted = name.toLowerCase();
  return headers.find(([n]) => n.toLowerCase() === wanted)?.[1];
}

/** Node's `rawHeaders` ([name, value, name, value, ...]) as a HeaderList: keeps case, order and repeats. */
export function fromRawHeaders(raw: readonly string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as string]);
  return out;
}

export function encodeHeaders(headers: HeaderList): XmlElement | undefined {
  if (headers.length === 0) return undefined;
  return el("headers", { xmlns: NS_SHIM }, ...headers.map(([name, value]) => el("header", { name }, value)));
}

/**
 * Decodes `<headers xmlns='http://jabber.org/protocol/shim'>`. A header that is not legal HTTP is refused
 * (a reply carrying CR/LF in a value would otherwise be a response-splitting vector).
 */
export function decodeHeaders(container: XmlElement | undefined): Array<[string, string]> {
  if (!container) return [];
  const out: Array<[string, string]> = [];
  for (const h of childElements(container)) {
    if (h.name !== "header") throw new CodecError("malformed", `unexpected <${h.name}> in <headers>`);
    const name = h.attrs.name;
    if (!name) throw new CodecError("malformed", "<header> without a name");
    const value = textOf(h);
    if (!isLegalHeader(name, value)) throw new CodecError("bad-header", `header ${JSON.stringify(name)} is not legal HTTP`);
    out.push([name, value]);
  }
  return out;
}
