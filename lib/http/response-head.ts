import { MAX_HEAD_FIELDS } from "../xep0332/headers.js";

/**
 * Whether a legacy device's response head may be relayed to the client as it is. Shared by the gateway's
 * pass-through and the device agent (adapters/device-agent/local-http.ts), the two places a legacy device's
 * own bytes are read. The agent carries the head inside XML on its XMPP stream, where XML 1.0 §2.2 forbids
 * NUL and most C0 controls even as character references: one such character ends the agent's whole stream
 * (RFC 6120 §4.9.3.13 `not-well-formed`), so the same rules keep that stream up. The gateway checks it
 * before anything is written to the client's response: node's `writeHead` assigns the status message before it validates it and
 * throws, and a device's bytes must never be able to make the gateway throw. Node's parser (llhttp, strict:
 * `insecureHTTPParser` is off) has already refused most malformed heads; what it lets through and is checked
 * here:
 *
 * - HTTP version: 1.0 or 1.1 (RFC 9112 §2.3: HTTP/1.x framing; llhttp also takes `HTTP/2.0` on a status line,
 *   which no HTTP/2 server sends: HTTP/2 has no status line at all).
 * - status code: a final response is 200..599 (RFC 9110 §15: "values outside the range 100..599 are invalid",
 *   and a recipient SHOULD treat one as a 5xx, i.e. 502 from a gateway). llhttp accepts any three digits
 *   (`000`, `099`, `999`); writeHead throws below 100. 1xx are interim, never final (RFC 9110 §15.2): node
 *   consumes 100/102/103 itself, and a 101 the gateway never asked for (it carries no upgrades) is refused.
 * - reason phrase: RFC 9112 §4, reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ). Control characters (NUL,
 *   DEL, the rest of C0) are refused; obs-text (0x80-0xFF) is grammatical and relayed byte for byte (node
 *   reads and writes the status line as latin1).
 * - header field names: tokens (RFC 9110 §5.1, §5.6.2); values: VCHAR / obs-text with SP and HTAB inside
 *   (RFC 9110 §5.5), no CR, LF or NUL (RFC 9110 §5.5: a recipient MUST reject or replace them; a gateway
 *   cannot know which the client would do, so it refuses). An obs-fold that reached us as CR/LF is refused
 *   likewise (RFC 9112 §5.2 allows a proxy to answer 502 for it).
 * - at most MAX_HEAD_FIELDS fields, the bound of a device reply over XMPP (lib/xep0332/headers.ts): node
 *   silently keeps only the first 2000, and a device must not lose fields on its way to XMPP.
 * - Transfer-Encoding other than ending in `chunked`: RFC 9112 §6.3 then delimits the body by the closing
 *   connection, with the transfer coding applied to it; the gateway strips hop-by-hop fields (RFC 9110 §7.6.1)
 *   and re-frames, so the client would get coded bytes it cannot decode. Refused.
 */
export type BadHeadReason =
  "version" | "status" | "interim-status" | "reason-phrase" | "header-name" | "header-value" | "header-count" | "transfer-coding";

export const BAD_HEAD_REASONS: readonly BadHeadReason[] = [
  "version",
  "status",
  "interim-status",
  "reason-phrase",
  "header-name",
  "header-value",
  "header-count",
  "transfer-coding",
];

export interface ResponseHead {
  /** Absent: not checked (1 assumed). */
  httpVersionMajor?: number;
  statusCode?: number | undefined;
  statusMessage?: string | undefined;
  /** Node's rawHeaders: name, value, name, value... */
  rawHeaders: readonly string[];
}

export type HeadVerdict = { ok: true } | { ok: false; reason: BadHeadReason; detail: string };

/** RFC 9110 §5.6.2: token = 1*tchar. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9112 §4: HTAB / SP / VCHAR / obs-text (empty allowed: the reason phrase is optional in practice). */
const REASON = /^[\t\x20-\x7e\x80-\xff]*$/;
/** RFC 9110 §5.5: field-vchar and SP / HTAB, no CTL (obs-text allowed). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function checkResponseHead(head: ResponseHead, maxFields = MAX_HEAD_FIELDS): HeadVerdict {
  if (head.httpVersionMajor !== undefined && head.httpVersionMajor !== 1) {
    return bad("version", `HTTP/${head.httpVersionMajor}.x is not HTTP/1.x (RFC 9112 §2.3)`);
  }
  const status = head.statusCode;
  if (status === undefined || !Number.isInteger(status) || status < 100 || status > 599) {
    return bad("status", `status code ${String(status)} is not a valid final status (RFC 9110 §15: 100..599)`);
  }
  if (status < 200) return bad("interim-status", `status ${status} is interim and cannot be a final response (RFC 9110 §15.2)`);
  if (!REASON.test(head.statusMessage ?? "")) return bad("reason-phrase", "reason phrase holds a control character (RFC 9112 §4)");
  const raw = head.rawHeaders;
  if (raw.length / 2 > maxFields) return bad("header-count", `${raw.length / 2} header fields, over the limit of ${maxFields}`);
  // Repeated Transfer-Encoding fields make one list (RFC 9110 §5.3): its last coding is what counts.
  const codings: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (!TOKEN.test(name)) return bad("header-name", "a header field name is not a token (RFC 9110 §5.1)");
    if (!FIELD_VALUE.test(value)) return bad("header-value", `header field ${name} holds a control character (RFC 9110 §5.5)`);
    if (name.toLowerCase() === "transfer-encoding")
      codings.push(
        ...value
          .split(",")
          .map((c) => c.trim().toLowerCase())
          .filter((c) => c !== ""),
      );
  }
  if (codings.length > 0 && codings.at(-1) !== "chunked")
    return bad("transfer-coding", "Transfer-Encoding does not end in chunked (RFC 9112 §6.3)");
  return { ok: true };
}

function bad(reason: BadHeadReason, detail: string): HeadVerdict {
  return { ok: false, reason, detail };
}
