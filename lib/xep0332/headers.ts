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
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

const CONNECTION = "connection";

export function isLegalHeader(name: string, value: string): boolean {
  return TOKEN.test(name) && FIELD_VALUE.test(value);
}

/**
 * Bounds on a response head the gateway writes to its clients. Each field is legal on its own (RFC 9110 §5),
 * but a client cannot read an unbounded head: past its own limit it just sees a broken connection, never a
 * status. 100 fields is what Apache httpd (LimitRequestFields) and Envoy (max_headers_count) allow by
 * default; 64 KiB of head (as on the HTTP/1.1 wire) is above what legitimate replies carry and below what
 * curl and browsers read. A reply over either is a bad reply (502), not a head cut short.
 */
export const MAX_HEAD_FIELDS = 100;
export const MAX_HEAD_BYTES = 64 * 1024;

/** Refuses a head with more fields or more bytes than the bounds; the reason phrase counts toward the bytes. */
export function checkHeadLimits(headers: HeaderList, reasonPhrase = "", limits = { fields: MAX_HEAD_FIELDS, bytes: MAX_HEAD_BYTES }): void {
  if (headers.length > limits.fields) {
    throw new CodecError("too-large", `${headers.length} header fields, over the limit of ${limits.fields}`);
  }
  // `name: value` and CRLF per field. Legal values are at most U+00FF, one byte each on the wire.
  let bytes = reasonPhrase.length;
  for (const [name, value] of headers) bytes += name.length + value.length + 4;
  if (bytes > limits.bytes) throw new CodecError("too-large", `response head of ${bytes} bytes, over the limit of ${limits.bytes}`);
}

/**
 * The one filter of hop-by-hop fields (RFC 9110 §7.6.1: the connection-specific ones, and any the message's
 * Connection fields list), and of those `drop` names (it gets the name in lower case), over a message's
 * fields by index (`nameAt`, `valueAt`: a header list, or node's flat rawHeaders). `each` gets every field
 * kept, in order, its name as sent and in lower case. Each name is lowered once for the filter: this runs
 * on every request and every answer, both ways.
 */
function forEachKept(
  count: number,
  nameAt: (i: number) => string,
  valueAt: (i: number) => string,
  drop: ((lowerName: string) => boolean) | undefined,
  each: (name: string, lowerName: string, value: string) => void,
): void {
  let named: Set<string> | undefined;
  for (let i = 0; i < count; i++) {
    const name = nameAt(i);
    if (name.length !== CONNECTION.length || name.toLowerCase() !== CONNECTION) continue;
    named ??= new Set();
    for (const token of valueAt(i).split(",")) {
      const t = token.trim().toLowerCase();
      if (t) named.add(t);
    }
  }
  for (let i = 0; i < count; i++) {
    const name = nameAt(i);
    const n = name.toLowerCase();
    // README ("Device requests", headers) promises Proxy-* as a family, not just the three names in HOP_BY_HOP.
    if (HOP_BY_HOP.has(n) || n.startsWith("proxy-") || named?.has(n) || drop?.(n)) continue;
    each(name, n, valueAt(i));
  }
}

/** The fields of `headers` that forEachKept keeps, as fresh pairs in their order. */
export function stripHopByHop(headers: HeaderList, drop?: (lowerName: string) => boolean): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  forEachKept(
    headers.length,
    (i) => (headers[i] as readonly [string, string])[0],
    (i) => (headers[i] as readonly [string, string])[1],
    drop,
    (name, _lower, value) => out.push([name, value]),
  );
  return out;
}

/**
 * The same filter over node's flat `rawHeaders` (name, value, name, value...), without making the pairs:
 * for the header object of the HTTP pass-through, built on every request.
 */
export function forEachEndToEnd(
  raw: readonly string[],
  drop: (lowerName: string) => boolean,
  each: (name: string, lowerName: string, value: string) => void,
): void {
  forEachKept(
    raw.length >> 1,
    (i) => raw[2 * i] as string,
    (i) => raw[2 * i + 1] as string,
    drop,
    each,
  );
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
 * RFC 9110 §8.6: Content-Length = 1*DIGIT. A list ("5, 6") or a second field makes the length ambiguous; a
 * recipient may refuse such a message, and clients' HTTP parsers do. The length of a HEAD or 304 reply is
 * passed on as the device declared it, so a bad one would reach the client as a response it cannot parse.
 */
const CONTENT_LENGTH = /^\d{1,15}$/;

/**
 * Decodes `<headers xmlns='http://jabber.org/protocol/shim'>`. A header that is not legal HTTP is refused
 * (a reply carrying CR/LF in a value would otherwise be a response-splitting vector), and so is a
 * Content-Length that is not one decimal number.
 */
export function decodeHeaders(container: XmlElement | undefined): Array<[string, string]> {
  if (!container) return [];
  const out: Array<[string, string]> = [];
  let contentLengths = 0;
  for (const h of childElements(container)) {
    if (h.name !== "header") throw new CodecError("malformed", `unexpected <${h.name}> in <headers>`);
    const name = h.attrs.name;
    if (!name) throw new CodecError("malformed", "<header> without a name");
    const value = textOf(h);
    if (!isLegalHeader(name, value)) throw new CodecError("bad-header", `header ${JSON.stringify(name)} is not legal HTTP`);
    if (name.toLowerCase() === "content-length" && (++contentLengths > 1 || !CONTENT_LENGTH.test(value))) {
      throw new CodecError("bad-header", `Content-Length ${JSON.stringify(value)} is not one decimal length`);
    }
    out.push([name, value]);
  }
  return out;
}
