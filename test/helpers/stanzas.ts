// Stanzas a scripted device sends back: XEP-0332 replies (<resp> in an IQ result, inline or announcing a
// chunked body), the <chunk> messages of a chunked body, and IQ errors (RFC 6120 §8.3).
import { NS_HTTP, NS_SHIM } from "../../lib/xep0332/constants.js";
import { el, type XmlElement } from "../../lib/xep0332/xml.js";
import { NS_STANZAS } from "../../lib/xmpp/stanza-error.js";

/** What an answer needs of the request it answers: its IQ id, and whom to send it to. */
export interface Answered {
  id: string;
  from: string;
}

/** A XEP-0332 <resp> with "OK" as its reason phrase; an undefined status code leaves the attribute out. */
export function resp(statusCode: string | undefined, ...children: XmlElement[]): XmlElement {
  return el("resp", { xmlns: NS_HTTP, version: "1.1", statusCode, statusMessage: "OK" }, ...children);
}

/** The IQ result answering `r`, with `payload` (usually a <resp>) or empty. */
export function result(r: Answered, payload?: XmlElement): XmlElement {
  return el("iq", { type: "result", id: r.id, to: r.from }, ...(payload ? [payload] : []));
}

/** The IQ error answering `r`: a defined condition of RFC 6120 §8.3.3 (e.g. item-not-found) of the given type. */
export function iqError(r: Answered, condition: string, type = "cancel"): XmlElement {
  return el("iq", { type: "error", id: r.id, to: r.from }, el("error", { type }, el(condition, { xmlns: NS_STANZAS })));
}

/** XEP-0131 header fields, in order. */
export function headers(...fields: Array<[string, string]>): XmlElement {
  return el("headers", { xmlns: NS_SHIM }, ...fields.map(([name, value]) => el("header", { name }, value)));
}

/** A text/plain body, inline: the <headers> and <data><text> children of a <resp>. */
export function textBody(text: string): XmlElement[] {
  return [headers(["Content-Type", "text/plain"]), el("data", {}, el("text", {}, text))];
}

/** A 200 <resp> whose body follows as <chunk> messages of stream `streamId`. */
export function chunkedHead(streamId: string, contentType = "application/octet-stream"): XmlElement {
  return resp("200", headers(["Content-Type", contentType]), el("data", {}, el("chunkedBase64", { streamId })));
}

/** Chunk `nr` of stream `streamId` (XEP-0332 chunkedBase64), sent to `to`: `bytes`, or a string sent as the base64 text as is; `last` ends the stream. */
export function chunk(to: string, streamId: string, nr: number, bytes: Buffer | string, last = false): XmlElement {
  const base64 = typeof bytes === "string" ? bytes : bytes.toString("base64");
  return el("message", { to }, el("chunk", { xmlns: NS_HTTP, streamId, nr: String(nr), last: last ? "true" : undefined }, base64));
}

/** A device's 200 answer to `r`: a text/plain body, inline (XEP-0332 <text>). */
export function textReply(r: Answered, text: string): XmlElement {
  return result(r, resp("200", ...textBody(text)));
}
