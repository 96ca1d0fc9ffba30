/** XEP-0332 §3 and §9 (schema): namespaces, methods and limits of HTTP over XMPP. */
export const NS_HTTP = "urn:xmpp:http";
/** XEP-0131 Stanza Headers and Internet Metadata: the `<headers>` container XEP-0332 reuses. */
export const NS_SHIM = "http://jabber.org/protocol/shim";

/** XEP-0332 §2 glossary: the methods carried. CONNECT is explicitly not supported. */
export const HTTP_METHODS = ["OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH"] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export function isHttpMethod(m: string): m is HttpMethod {
  return (HTTP_METHODS as readonly string[]).includes(m);
}

export const HTTP_VERSION = "1.1";

/** XEP-0332 §9, type MaxChunkSize: a peer may ask for chunks between 256 and 65536 bytes. */
export const MIN_CHUNK_SIZE = 256;
export const MAX_CHUNK_SIZE = 65536;

/**
 * Defaults chosen well below Prosody's stanza limits (256 KiB c2s, 512 KiB components; an oversized stanza
 * closes the whole connection): a 64 KiB body is ~88 KiB of base64, leaving room for headers.
 */
export const DEFAULT_CHUNK_THRESHOLD = 65536;
export const DEFAULT_CHUNK_SIZE = 32768;

/** A chunk size within XEP-0332's bounds; NaN (an unparsable setting) means the default. */
export function clampChunkSize(n: number): number {
  if (Number.isNaN(n)) return DEFAULT_CHUNK_SIZE;
  return Math.min(MAX_CHUNK_SIZE, Math.max(MIN_CHUNK_SIZE, Math.floor(n)));
}
