import { CodecError, malformed } from "./errors.js";
import { childElements, el, hasForbiddenXmlChars, serialize, textOf, type XmlElement } from "./xml.js";

/** How a body travels inside `<data>` (XEP-0332 §3); `none` means no `<data>` element at all. */
export type BodyForm = "none" | "text" | "base64" | "xml" | "chunkedBase64";

/** A decoded body: the bytes when they were inline, or the stream id whose `<chunk>` messages carry them. */
export type DecodedBody =
  { kind: "inline"; form: "none" | "text" | "base64" | "xml"; bytes: Buffer } | { kind: "chunked"; streamId: string };

const TEXTUAL_TYPES = /^(text\/[^;\s]+|application\/(json|xml|javascript|ecmascript|x-www-form-urlencoded|[\w.+-]+\+(json|xml)))$/i;
const UTF8_CHARSETS = new Set(["utf-8", "utf8", "us-ascii", "ascii"]);

/** True for media types whose body is text, in UTF-8 (or with no charset said). */
export function isTextualContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const [type, ...params] = contentType.split(";");
  if (!TEXTUAL_TYPES.test((type ?? "").trim())) return false;
  for (const p of params) {
    const [k, v] = p.split("=");
    if (k?.trim().toLowerCase() === "charset") {
      const cs = (v ?? "").trim().replace(/^"|"$/g, "").toLowerCase();
      if (!UTF8_CHARSETS.has(cs)) return false;
    }
  }
  return true;
}

const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The body as `<text>` when its bytes survive a trip through XML unchanged, else undefined.
 * XML 1.0 §2.11 turns CR and CRLF into LF (Prosody even forwards `&#13;` as a raw CR that the next parser
 * folds), and §2.2 forbids most C0 controls: such bodies, or bytes that are not UTF-8, go as base64.
 */
export function asXmlSafeText(body: Buffer, contentType: string | undefined): string | undefined {
  if (!isTextualContentType(contentType)) return undefined;
  let text: string;
  try {
    text = STRICT_UTF8.decode(body);
  } catch {
    return undefined;
  }
  if (text.includes("\r") || hasForbiddenXmlChars(text)) return undefined;
  return text;
}

/** Chooses the inline form for a body (callers decide chunking first). Empty bodies have no `<data>`. */
export function encodeInlineData(body: Buffer, contentType: string | undefined): XmlElement | undefined {
  if (body.length === 0) return undefined;
  const text = asXmlSafeText(body, contentType);
  if (text !== undefined) return el("data", {}, el("text", {}, text));
  return el("data", {}, el("base64", {}, body.toString("base64")));
}

export function encodeChunkedData(streamId: string): XmlElement {
  return el("data", {}, el("chunkedBase64", { streamId }));
}

const BASE64_ALPHABET = /^[A-Za-z0-9+/]*$/;

/** Strict base64 (RFC 4648 §4), whitespace between groups allowed; anything else is malformed. */
export function decodeBase64(text: string, what: string): Buffer {
  const compact = text.replace(/[\t\n\r ]+/g, "");
  // Length and padding checked apart: a regex with a repeated 4-char group overflows V8's backtracking
  // stack (RangeError) on a few MB of input, and nothing but a CodecError may escape the codec.
  const pad = compact.endsWith("==") ? 2 : compact.endsWith("=") ? 1 : 0;
  if (compact.length % 4 !== 0 || !BASE64_ALPHABET.test(compact.slice(0, compact.length - pad))) {
    throw malformed(`${what} is not valid base64`);
  }
  return Buffer.from(compact, "base64");
}

export function decodeData(data: XmlElement | undefined): DecodedBody {
  if (!data) return { kind: "inline", form: "none", bytes: Buffer.alloc(0) };
  const forms = childElements(data);
  if (forms.length !== 1) throw malformed(`<data> must hold exactly one element, found ${forms.length}`);
  const form = forms[0] as XmlElement;
  switch (form.name) {
    case "text":
      return { kind: "inline", form: "text", bytes: Buffer.from(textOf(form), "utf8") };
    case "base64":
      return { kind: "inline", form: "base64", bytes: decodeBase64(textOf(form), "<base64>") };
    case "xml": {
      // XEP-0332 §3 "xml": the body is the embedded XML; re-serialized, so compare it as XML, not bytes.
      const content = form.children.map(serialize).join("");
      return { kind: "inline", form: "xml", bytes: Buffer.from(content, "utf8") };
    }
    case "chunkedBase64": {
      const streamId = form.attrs.streamId;
      if (!streamId) throw malformed("<chunkedBase64> without a streamId");
      return { kind: "chunked", streamId };
    }
    case "sipub":
    case "ibb":
    case "jingle":
      throw new CodecError("unsupported", `body transfer by <${form.name}> is not supported`);
    default:
      throw malformed(`unknown body form <${form.name}>`);
  }
}
