// Real XML text into the codec's tree, through ltx: the parser family the XMPP libraries use.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { parse as ltxParse } from "ltx";
import { childElements, findChild, type XmlElement } from "../../lib/xep0332/xml.js";

export function parseXml(xml: string): XmlElement {
  return ltxParse(xml);
}

export function fixture(name: string): XmlElement {
  return parseXml(readFileSync(new URL(`../fixtures/xep0332/${name}`, import.meta.url), "utf8"));
}

/** The body form an encoded `<req>`/`<resp>` chose: `none`, `text`, `base64`, `xml` or `chunkedBase64`. */
export function formOf(payload: XmlElement): string {
  const data = findChild(payload, "data");
  if (!data) return "none";
  const forms = childElements(data);
  assert.equal(forms.length, 1, "<data> holds exactly one form");
  return (forms[0] as XmlElement).name;
}
