import { NS_HTTP } from "../xep0332/constants.js";
import { el, type XmlElement } from "../xep0332/xml.js";

export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const NS_PING = "urn:xmpp:ping";

/**
 * XEP-0030 disco#info answer. Both ends advertise `urn:xmpp:http` (XEP-0332 §4 "Determining support") and
 * XEP-0199 ping, which both answer.
 */
export function discoInfo(identity: { category: string; type: string; name: string }): XmlElement {
  return el(
    "query",
    { xmlns: NS_DISCO_INFO },
    el("identity", identity),
    el("feature", { var: NS_DISCO_INFO }),
    el("feature", { var: NS_HTTP }),
    el("feature", { var: NS_PING }),
  );
}
