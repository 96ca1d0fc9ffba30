/**
 * A neutral XML tree. The codec builds and reads this shape only, so it stays pure and independent of the
 * two `@xmpp/xml` versions in play (the component's 0.13 and the client's 0.14): each XMPP facade converts
 * to its own library's elements on the way out, and ltx elements coming in already have this shape
 * (`name`, `attrs`, `children`).
 */
export interface XmlElement {
  name: string;
  attrs: Record<string, string | undefined>;
  children: XmlNode[];
}
export type XmlNode = XmlElement | string;

export function el(name: string, attrs: Record<string, string | undefined> = {}, ...children: XmlNode[]): XmlElement {
  // `for...in` over the caller's own literal: Object.entries would build an array of pairs per element.
  const clean: Record<string, string> = {};
  for (const k in attrs) {
    const v = attrs[k];
    if (v !== undefined) clean[k] = v;
  }
  return { name, attrs: clean, children };
}

export function isElement(node: unknown): node is XmlElement {
  return (
    typeof node === "object" &&
    node !== null &&
    typeof (node as XmlElement).name === "string" &&
    typeof (node as XmlElement).attrs === "object" &&
    Array.isArray((node as XmlElement).children)
  );
}

export function childElements(parent: XmlElement): XmlElement[] {
  return parent.children.filter(isElement);
}

/** The first child with this local name (and namespace, when given: declared on the child itself). */
export function findChild(parent: XmlElement, name: string, xmlns?: string): XmlElement | undefined {
  return childElements(parent).find((c) => c.name === name && (xmlns === undefined || c.attrs.xmlns === xmlns));
}

/** Concatenated text of the direct text children (ltx splits text around entities into several strings). */
export function textOf(node: XmlElement): string {
  let out = "";
  for (const c of node.children) if (typeof c === "string") out += c;
  return out;
}

const TEXT_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };
const ATTR_ESCAPES: Record<string, string> = { ...TEXT_ESCAPES, '"': "&quot;", "'": "&apos;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;" };

/** What needs escaping in text and in attribute values; tested before any replace (most strings have none). */
const TEXT_SPECIAL = /[&<>]/;
const ATTR_SPECIAL = /[&<>"'\t\n\r]/;

// A replace with a function allocates its result and match state even when nothing matches: a test first
// took a third off serialize's garbage per IQ (its attributes and text need no escape, nearly always).
export function escapeText(s: string): string {
  return TEXT_SPECIAL.test(s) ? s.replace(/[&<>]/g, (c) => TEXT_ESCAPES[c] ?? c) : s;
}

export function escapeAttr(s: string): string {
  return ATTR_SPECIAL.test(s) ? s.replace(/[&<>"'\t\n\r]/g, (c) => ATTR_ESCAPES[c] ?? c) : s;
}

/** A closing tag still to be written, kept apart from text nodes on serialize's stack. */
class EndTag {
  constructor(readonly name: string) {}
}

/**
 * Serializes a tree to a string (used for `<xml>` bodies, whose bytes are the re-serialized XML).
 * Iterative: a peer chooses the depth of an `<xml>` body, and recursion overflows V8's stack at a few
 * thousand levels (a RangeError, where nothing but a CodecError may escape the codec).
 */
export function serialize(node: XmlNode): string {
  let out = "";
  const pending: Array<XmlNode | EndTag> = [node];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    if (typeof item === "string") {
      out += escapeText(item);
      continue;
    }
    if (item instanceof EndTag) {
      out += `</${item.name}>`;
      continue;
    }
    out += `<${item.name}`;
    const attrs = item.attrs;
    for (const k in attrs) {
      const v = attrs[k];
      if (v !== undefined) out += ` ${k}="${escapeAttr(v)}"`;
    }
    if (item.children.length === 0) {
      out += "/>";
      continue;
    }
    out += ">";
    pending.push(new EndTag(item.name));
    for (let i = item.children.length - 1; i >= 0; i--) pending.push(item.children[i] as XmlNode);
  }
  return out;
}

/**
 * Characters XML 1.0 forbids (§2.2 Char): C0 controls other than TAB/LF/CR, lone surrogates, U+FFFE/U+FFFF.
 * Such text cannot travel in an XMPP stream at all.
 */

const FORBIDDEN_XML_CHARS =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function hasForbiddenXmlChars(s: string): boolean {
  return FORBIDDEN_XML_CHARS.test(s);
}
