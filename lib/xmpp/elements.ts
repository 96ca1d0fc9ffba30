import type { XmlElement, XmlNode } from "../xep0332/xml.js";

/** The `xml()` factory of an `@xmpp/*` package: each package must build its stanzas with its own copy. */
export type XmlFactory<E> = (name: string, attrs?: Record<string, string>, ...children: Array<E | string>) => E;

/**
 * Converts the codec's neutral tree into the library's element type. Needed because `@xmpp/iq` checks
 * replies with `instanceof xml.Element` of its own `@xmpp/xml`: a foreign element would be silently dropped.
 */
export function toLibraryElement<E>(xml: XmlFactory<E>, node: XmlElement): E {
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(node.attrs)) if (v !== undefined) attrs[k] = v;
  return xml(node.name, attrs, ...node.children.map((c: XmlNode) => (typeof c === "string" ? c : toLibraryElement(xml, c))));
}

/** Incoming ltx elements already have the neutral shape; this only narrows the type. */
export function asXmlElement(stanza: unknown): XmlElement {
  return stanza as XmlElement;
}
