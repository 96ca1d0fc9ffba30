// The answers an XMPP entity owes to IQ requests (lib/xmpp/iq-answer.ts, RFC 6120 §8.2.3 and §8.3).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { answerIq, isIqRequest, type IqRoute } from "../../lib/xmpp/iq-answer.js";
import { NS_STANZAS } from "../../lib/xmpp/stanza-error.js";
import { el, serialize, type XmlElement } from "../../lib/xep0332/xml.js";

const ROUTES: IqRoute[] = [
  { type: "get", xmlns: "urn:xmpp:ping", name: "ping", answer: () => undefined },
  { type: "get", xmlns: "urn:test:info", name: "query", answer: () => el("query", { xmlns: "urn:test:info" }, el("item")) },
];

const request = (type: string, ...payload: XmlElement[]) =>
  el("iq", { type, id: "q1", from: "peer@example.com/r", to: "gateway.example.com" }, ...payload);

describe("answerIq", () => {
  it("answers a routed get with its result, to the sender, with the request's id", () => {
    assert.equal(
      serialize(answerIq(request("get", el("query", { xmlns: "urn:test:info" })), ROUTES)),
      `<iq to="peer@example.com/r" from="gateway.example.com" id="q1" type="result"><query xmlns="urn:test:info"><item/></query></iq>`,
    );
  });

  it("answers a ping with an empty result (XEP-0199 §4.2)", () => {
    const answer = answerIq(request("get", el("ping", { xmlns: "urn:xmpp:ping" })), ROUTES);
    assert.equal(answer.attrs.type, "result");
    assert.deepEqual(answer.children, []);
  });

  it("refuses a payload no route takes with service-unavailable, its payload echoed (§8.4)", () => {
    for (const payload of [el("ping", { xmlns: "urn:other" }), el("query", { xmlns: "urn:test:info" })]) {
      const type = payload.attrs.xmlns === "urn:other" ? "get" : "set"; // a set of a get-only route is not taken either
      const answer = answerIq(request(type, payload), ROUTES);
      assert.equal(answer.attrs.type, "error");
      assert.equal(answer.attrs.id, "q1");
      assert.equal(answer.attrs.to, "peer@example.com/r");
      assert.equal(
        serialize(answer.children[1] as XmlElement),
        `<error type="cancel"><service-unavailable xmlns="${NS_STANZAS}"/></error>`,
      );
      assert.deepEqual(answer.children[0], payload);
    }
  });

  it("refuses a request without exactly one payload element with bad-request (§8.2.3, rule 6)", () => {
    for (const payloads of [[], [el("ping", { xmlns: "urn:xmpp:ping" }), el("ping", { xmlns: "urn:xmpp:ping" })]]) {
      const answer = answerIq(request("get", ...payloads), ROUTES);
      assert.equal(answer.attrs.type, "error");
      assert.equal(serialize(answer.children[0] as XmlElement), `<error type="modify"><bad-request xmlns="${NS_STANZAS}"/></error>`);
    }
  });

  it("tells IQ requests from results, errors and other stanzas", () => {
    assert.equal(isIqRequest(request("get")), true);
    assert.equal(isIqRequest(request("set")), true);
    assert.equal(isIqRequest(request("result")), false);
    assert.equal(isIqRequest(request("error")), false);
    assert.equal(isIqRequest(el("message", { type: "get" })), false);
  });
});
