import { childElements, el, type XmlElement } from "../xep0332/xml.js";

export const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

/** RFC 6120 §8.3.2: an `<error>` of `type` with one defined condition, and an optional text. */
export function stanzaError(type: string, condition: string, text?: string): XmlElement {
  const children = [el(condition, { xmlns: NS_STANZAS })];
  if (text) children.push(el("text", { xmlns: NS_STANZAS }, text));
  return el("error", { type }, ...children);
}

/** RFC 6120 §8.3: the defined condition of an `<iq type='error'>`, and its optional text. */
export function stanzaErrorOf(stanza: XmlElement): { condition: string; text?: string } {
  const error = childElements(stanza).find((c) => c.name === "error");
  if (!error) return { condition: "undefined-condition" };
  let condition = "undefined-condition";
  let text: string | undefined;
  for (const c of childElements(error)) {
    if (c.attrs.xmlns !== NS_STANZAS) continue;
    if (c.name === "text") text = c.children.filter((t): t is string => typeof t === "string").join("");
    else condition = c.name;
  }
  return text === undefined ? { condition } : { condition, text };
}
