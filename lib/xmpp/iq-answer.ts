import { childElements, el, type XmlElement } from "../xep0332/xml.js";
import { stanzaError } from "./stanza-error.js";

/** One IQ request an entity answers: its type, and its payload's namespace and name. */
export interface IqRoute {
  type: "get" | "set";
  xmlns: string;
  name: string;
  /** The result's payload; undefined: an empty result (XEP-0199's pong). */
  answer: () => XmlElement | undefined;
}

/** Whether `stanza` is an IQ request (RFC 6120 §8.2.3: `get` or `set`), which must be answered. */
export function isIqRequest(stanza: XmlElement): boolean {
  return stanza.name === "iq" && (stanza.attrs.type === "get" || stanza.attrs.type === "set");
}

/**
 * The answer to an IQ request (RFC 6120 §8.2.3: every `get` and `set` gets a `result` or an `error`), to its
 * sender, with its id: the route's result; `bad-request` when it does not carry exactly one payload element
 * (§8.2.3, rule 6); `service-unavailable` for a payload no route takes (§8.4), with the request's payload
 * echoed as §8.3.1 allows.
 */
export function answerIq(iq: XmlElement, routes: readonly IqRoute[]): XmlElement {
  const head = { to: iq.attrs.from, from: iq.attrs.to, id: iq.attrs.id };
  const payloads = childElements(iq);
  const payload = payloads[0];
  if (payloads.length !== 1 || payload === undefined) return el("iq", { ...head, type: "error" }, stanzaError("modify", "bad-request"));
  const route = routes.find((r) => r.type === iq.attrs.type && r.name === payload.name && r.xmlns === payload.attrs.xmlns);
  if (!route) return el("iq", { ...head, type: "error" }, payload, stanzaError("cancel", "service-unavailable"));
  const result = route.answer();
  return el("iq", { ...head, type: "result" }, ...(result ? [result] : []));
}
