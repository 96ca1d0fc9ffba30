/**
 * XEP-0332 codec: decoding real XML text (fixtures written after the XEP's examples, docs/architecture.md's XMPP contract and slixmpp's
 * plugin dialect), the `<xml>` body form, and every malformed input ending as a CodecError with its reason.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  ChunkAssembler,
  CodecError,
  NS_HTTP,
  childElements,
  decodeChunk,
  decodeData,
  decodeRequest,
  decodeResponse,
  el,
  encodeRequest,
  encodeResponse,
  findChild,
  serialize,
  type XmlElement,
  type XmlNode,
} from "../../lib/xep0332/index.js";
import { parseXml, fixture } from "../helpers/xml.js";
import { expectCodecError } from "../helpers/thrown.js";

// ---------------------------------------------------------------------------------------------- helpers

/** The IQ's (or message's) single payload element. */
function payloadOf(stanza: XmlElement): XmlElement {
  const kids = childElements(stanza);
  assert.equal(kids.length, 1, `<${stanza.name}> has one payload`);
  return kids[0] as XmlElement;
}

function inlineBytes(body: ReturnType<typeof decodeData>): Buffer {
  assert.equal(body.kind, "inline");
  return body.kind === "inline" ? body.bytes : Buffer.alloc(0);
}

/** Structural form of a tree for comparing XML as XML: sorted attributes, text kept, parents dropped. */
function canon(node: XmlNode): unknown {
  if (typeof node === "string") return node;
  const attrs = Object.fromEntries(
    Object.entries(node.attrs)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => a.localeCompare(b)),
  );
  return { name: node.name, attrs, children: mergeText(node.children).map(canon) };
}

function mergeText(nodes: XmlNode[]): XmlNode[] {
  const out: XmlNode[] = [];
  for (const n of nodes) {
    const prev = out.at(-1);
    if (typeof n === "string" && typeof prev === "string") out[out.length - 1] = prev + n;
    else out.push(n);
  }
  return out;
}

const RESP = (attrs: string, inner = ""): string => `<resp xmlns='urn:xmpp:http' version='1.1' ${attrs}>${inner}</resp>`;
const REQ = (attrs: string, inner = ""): string => `<req xmlns='urn:xmpp:http' version='1.1' ${attrs}>${inner}</req>`;
const OK = "statusCode='200'";
const GET = "method='GET' resource='/'";

// ------------------------------------------------------------------------------------------------ fixtures

describe("xep0332 fixtures (XEP-0332 examples, the XMPP contract of docs/architecture.md)", () => {
  it("decodes the XEP's GET request with headers and an escaped query string", () => {
    const req = decodeRequest(payloadOf(fixture("xep-get-request.xml")));
    assert.equal(req.method, "GET");
    assert.equal(req.resource, "/rdf/xep?lang=en&v=2");
    assert.equal(req.version, "1.1");
    assert.equal(req.maxChunkSize, 4096);
    assert.deepEqual(req.headers, [
      ["Host", "example.org"],
      ["Accept", "application/rdf+xml"],
      ["Accept", "text/html;q=0.5"],
    ]);
    assert.deepEqual(req.body, { kind: "inline", form: "none", bytes: Buffer.alloc(0) });
  });

  it("decodes the XMPP contract's POST request with a JSON <text> body", () => {
    const req = decodeRequest(payloadOf(fixture("design-post-request.xml")));
    assert.equal(req.method, "POST");
    assert.equal(req.resource, "/BULB/ON?x=1");
    assert.equal(req.maxChunkSize, 32768);
    assert.deepEqual(req.headers, [["Content-Type", "application/json"]]);
    assert.equal(req.body.kind === "inline" && req.body.form, "text");
    assert.equal(inlineBytes(req.body).toString("utf8"), '{"state":"on"}');
  });

  it("decodes a <text> HTML response with entities and non-ASCII", () => {
    const resp = decodeResponse(payloadOf(fixture("xep-text-response.xml")));
    assert.equal(resp.statusCode, 200);
    assert.equal(resp.statusMessage, "OK");
    assert.equal(resp.headers.length, 4);
    assert.deepEqual(resp.headers[2], ["Content-Type", "text/html; charset=utf-8"]);
    assert.equal(
      inlineBytes(resp.body).toString("utf8"),
      "<html><head><title>Sensor</title></head><body><p>Température 21.5 °C & humidité 40 %</p></body></html>",
    );
  });

  it("decodes a CDATA section in <text>", () => {
    const resp = decodeResponse(payloadOf(fixture("cdata-text-response.xml")));
    assert.equal(resp.statusCode, 404);
    assert.equal(resp.statusMessage, "Not Found");
    assert.equal(inlineBytes(resp.body).toString("utf8"), "<b>no such sensor</b> & nothing else");
  });

  it("decodes line-wrapped, indented <base64> byte-exact", () => {
    const resp = decodeResponse(payloadOf(fixture("xep-base64-response.xml")));
    const bytes = inlineBytes(resp.body);
    assert.equal(resp.body.kind === "inline" && resp.body.form, "base64");
    assert.equal(bytes.length, 208);
    assert.deepEqual(bytes.subarray(0, 8), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    assert.equal(createHash("sha256").update(bytes).digest("hex"), "90ec39847d732ef5c0482b73a19d4fec14d00f7b1258687a1cd347b4fe70cc22");
  });

  it("decodes an <xml> body as serialized XML that re-parses to the same tree", () => {
    const stanza = fixture("xep-xml-response.xml");
    const resp = decodeResponse(payloadOf(stanza));
    assert.equal(resp.body.kind === "inline" && resp.body.form, "xml");
    const xmlForm = findChild(findChild(payloadOf(stanza), "data") as XmlElement, "xml") as XmlElement;
    const reparsed = parseXml(`<wrap>${inlineBytes(resp.body).toString("utf8")}</wrap>`);
    assert.deepEqual(canon(reparsed), canon({ name: "wrap", attrs: {}, children: xmlForm.children }));
    const rdf = childElements(reparsed)[0] as XmlElement;
    assert.equal(rdf.name, "rdf:RDF");
    assert.equal(rdf.attrs["xmlns:rdf"], "http://www.w3.org/1999/02/22-rdf-syntax-ns#");
    const person = childElements(rdf)[0] as XmlElement;
    const name = childElements(person)[0] as XmlElement;
    assert.deepEqual(name.children.map((c) => (typeof c === "string" ? c : serialize(c))).join(""), 'Alice & "Bob" <3');
  });

  it("decodes a chunkedBase64 response and its <chunk> messages in any order", () => {
    const resp = decodeResponse(payloadOf(fixture("xep-chunked-response.xml")));
    assert.deepEqual(resp.body, { kind: "chunked", streamId: "Stream0002" });
    const expected = Buffer.from("The quick brown fox jumps over the lazy dog. ".repeat(14).slice(0, 600), "utf8");
    for (const order of [
      [0, 1, 2],
      [2, 0, 1],
      [1, 2, 0],
    ]) {
      const assembler = new ChunkAssembler(10_000);
      for (const i of order) {
        const message = fixture(`xep-chunk-${i}.xml`);
        assert.equal(message.name, "message");
        const chunk = decodeChunk(findChild(message, "chunk", NS_HTTP) as XmlElement);
        assert.equal(chunk.streamId, "Stream0002");
        assert.equal(chunk.nr, i);
        assert.equal(chunk.last, i === 2);
        assembler.add(chunk);
      }
      assert.ok(assembler.complete);
      assert.deepEqual(assembler.take(), expected);
    }
  });

  it("refuses a sipub body as unsupported", () => {
    expectCodecError(() => decodeResponse(payloadOf(fixture("sipub-response.xml"))), "unsupported", "sipub fixture");
  });
});

describe("xep0332 slixmpp dialect", () => {
  it("decodes <response xmlns='urn:xmpp:http' statusCode=…>", () => {
    const stanza = fixture("slixmpp-response.xml");
    const payload = payloadOf(stanza);
    assert.equal(payload.name, "response");
    const resp = decodeResponse(payload);
    assert.equal(resp.statusCode, 200);
    assert.equal(resp.statusMessage, "OK");
    assert.deepEqual(
      resp.headers.map(([n]) => n),
      ["Content-Type", "Content-Length", "Date"],
    );
    const body = inlineBytes(resp.body);
    assert.equal(body.length, 52);
    assert.deepEqual(JSON.parse(body.toString("utf8")), { temperature: 21.5, unit: "°C", ok: true });
  });

  it("decodes <request xmlns='urn:xmpp:http' method=… resource=…>", () => {
    const req = decodeRequest(payloadOf(fixture("slixmpp-request.xml")));
    assert.equal(req.method, "PUT");
    assert.equal(req.resource, "/api/v1/led?id=2&mode=blink");
    assert.equal(req.maxChunkSize, undefined);
    assert.deepEqual(req.headers, [
      ["Content-Type", "application/json"],
      ["Accept", "*/*"],
    ]);
    assert.equal(inlineBytes(req.body).toString("utf8"), '{"on": true, "color": "#ff8800"}');
  });

  it("still refuses a request payload where a response is expected and vice versa", () => {
    expectCodecError(() => decodeResponse(payloadOf(fixture("slixmpp-request.xml"))), "malformed", "request as response");
    expectCodecError(() => decodeRequest(payloadOf(fixture("slixmpp-response.xml"))), "malformed", "response as request");
  });
});

describe("xep0332 <xml> body form", () => {
  function xmlBody(inner: string): { bytes: Buffer; original: XmlElement } {
    const node = parseXml(RESP(OK, `<data><xml>${inner}</xml></data>`));
    const resp = decodeResponse(node);
    assert.equal(resp.body.kind === "inline" && resp.body.form, "xml");
    const original = findChild(findChild(node, "data") as XmlElement, "xml") as XmlElement;
    return { bytes: inlineBytes(resp.body), original };
  }

  it("re-serializes nested namespaced XML with attributes, entities and quotes", () => {
    const inner = `<s:sensor xmlns:s='urn:example:sensors' id='t1' label="it's &quot;hot&quot; &amp; &lt;dry&gt;"><s:value unit='°C'>21.5</s:value><s:note>a &lt; b &amp;&amp; c &gt; d</s:note><empty/></s:sensor>`;
    const { bytes, original } = xmlBody(inner);
    const reparsed = parseXml(`<xml>${bytes.toString("utf8")}</xml>`);
    assert.deepEqual(canon(reparsed), canon(original));
    const sensor = childElements(reparsed)[0] as XmlElement;
    assert.equal(sensor.attrs.label, `it's "hot" & <dry>`);
  });

  it("keeps several top-level elements and the text between them", () => {
    const { bytes, original } = xmlBody(" <a n='1'/> and <b>two</b> ");
    const reparsed = parseXml(`<xml>${bytes.toString("utf8")}</xml>`);
    assert.deepEqual(canon(reparsed), canon(original));
    assert.deepEqual(
      childElements(reparsed).map((c) => c.name),
      ["a", "b"],
    );
  });

  it("decodes <xml/> with no content as an empty body", () => {
    const resp = decodeResponse(parseXml(RESP(OK, "<data><xml/></data>")));
    assert.equal(inlineBytes(resp.body).length, 0);
  });
});

// ------------------------------------------------------------------------------------------------ errors

describe("xep0332 malformed responses → CodecError", () => {
  for (const code of ["abc", "99", "600", "2000", "", " 200", "200 ", "2OO", "-200", "+200", "200.0", "2e2", "0x0C8", "020", "099"]) {
    it(`statusCode ${JSON.stringify(code)} is malformed`, () => {
      expectCodecError(() => decodeResponse(parseXml(RESP(`statusCode='${code}'`))), "malformed", code);
    });
  }

  it("accepts the statusCode bounds 100 and 599", () => {
    assert.equal(decodeResponse(parseXml(RESP("statusCode='100'"))).statusCode, 100);
    assert.equal(decodeResponse(parseXml(RESP("statusCode='599'"))).statusCode, 599);
  });

  it("refuses a missing statusCode", () => {
    expectCodecError(() => decodeResponse(parseXml(RESP(""))), "malformed");
  });

  it("refuses a missing or non-HTTP version", () => {
    expectCodecError(() => decodeResponse(parseXml(`<resp xmlns='urn:xmpp:http' statusCode='200'/>`)), "malformed", "no version");
    for (const v of ["HTTP/1.1", "1", "11", "1.1.1", ""]) {
      expectCodecError(() => decodeResponse(parseXml(`<resp xmlns='urn:xmpp:http' version='${v}' statusCode='200'/>`)), "malformed", v);
    }
  });

  it("refuses a wrong or missing namespace", () => {
    for (const xml of [
      `<resp xmlns='urn:xmpp:http:1' version='1.1' statusCode='200'/>`,
      `<resp version='1.1' statusCode='200'/>`,
      `<resp xmlns='jabber:client' version='1.1' statusCode='200'/>`,
      `<response xmlns='urn:xmpp:https' version='1.1' statusCode='200'/>`,
    ]) {
      expectCodecError(() => decodeResponse(parseXml(xml)), "malformed", xml);
    }
  });

  it("refuses a wrong element name", () => {
    for (const name of ["req", "request", "answer", "data", "iq"]) {
      expectCodecError(
        () => decodeResponse(parseXml(`<${name} xmlns='urn:xmpp:http' version='1.1' statusCode='200'/>`)),
        "malformed",
        name,
      );
    }
  });

  it("refuses a statusMessage with a newline, CR or NUL", () => {
    expectCodecError(() => decodeResponse(parseXml(RESP(`${OK} statusMessage='O&#10;K'`))), "malformed", "LF");
    expectCodecError(() => decodeResponse(parseXml(RESP(`${OK} statusMessage='OK&#13;&#10;Set-Cookie: x=1'`))), "malformed", "CRLF");
    expectCodecError(
      () => decodeResponse(el("resp", { xmlns: NS_HTTP, version: "1.1", statusCode: "200", statusMessage: "O\u0000K" })),
      "malformed",
      "NUL",
    );
  });

  it("accepts a statusMessage with a tab and Latin-1 text", () => {
    assert.equal(decodeResponse(parseXml(RESP(`${OK} statusMessage='Tout va bien\tça marche'`))).statusMessage, "Tout va bien\tça marche");
  });
});

describe("xep0332 malformed requests → CodecError", () => {
  for (const method of ["CONNECT", "get", "Get", "FOO", "PROPFIND", " GET"]) {
    it(`method ${JSON.stringify(method)} is unsupported`, () => {
      expectCodecError(() => decodeRequest(parseXml(REQ(`method='${method}' resource='/'`))), "unsupported", method);
    });
  }

  it("refuses a missing or empty method as malformed", () => {
    expectCodecError(() => decodeRequest(parseXml(REQ("resource='/'"))), "malformed", "no method");
    expectCodecError(() => decodeRequest(parseXml(REQ("method='' resource='/'"))), "malformed", "empty method");
  });

  for (const resource of ["foo", "", "http://device/x", "?a=1", "**", "/a b", "/a&#10;b", "/a&#9;b", "/a&#13;b", "/a\u00a0b"]) {
    it(`resource ${JSON.stringify(resource)} is malformed`, () => {
      expectCodecError(() => decodeRequest(parseXml(REQ(`method='GET' resource='${resource}'`))), "malformed", resource);
    });
  }

  it("refuses a missing resource, and a resource with a DEL or control character", () => {
    expectCodecError(() => decodeRequest(parseXml(REQ("method='GET'"))), "malformed", "no resource");
    expectCodecError(
      () => decodeRequest(el("req", { xmlns: NS_HTTP, version: "1.1", method: "GET", resource: "/a\u007fb" })),
      "malformed",
      "DEL",
    );
    expectCodecError(
      () => decodeRequest(el("req", { xmlns: NS_HTTP, version: "1.1", method: "GET", resource: "/a\u0000b" })),
      "malformed",
      "NUL",
    );
  });

  it("refuses a missing version", () => {
    expectCodecError(() => decodeRequest(parseXml(`<req xmlns='urn:xmpp:http' method='GET' resource='/'/>`)), "malformed");
  });

  it("refuses a wrong namespace or element name", () => {
    expectCodecError(() => decodeRequest(parseXml(`<req xmlns='urn:xmpp:http:0' version='1.1' ${GET}/>`)), "malformed", "ns");
    expectCodecError(() => decodeRequest(parseXml(`<req version='1.1' ${GET}/>`)), "malformed", "no ns");
    expectCodecError(() => decodeRequest(parseXml(`<resp xmlns='urn:xmpp:http' version='1.1' ${GET}/>`)), "malformed", "resp");
    expectCodecError(() => decodeRequest(parseXml(`<get xmlns='urn:xmpp:http' version='1.1' ${GET}/>`)), "malformed", "get");
  });

  for (const size of ["abc", "-1", "1e3", "", " 512", "4096.5", "0x100", "1234567890"]) {
    it(`maxChunkSize ${JSON.stringify(size)} is malformed`, () => {
      expectCodecError(() => decodeRequest(parseXml(REQ(`${GET} maxChunkSize='${size}'`))), "malformed", size);
    });
  }

  it("clamps an announced maxChunkSize into 256..65536 when decoding", () => {
    assert.equal(decodeRequest(parseXml(REQ(`${GET} maxChunkSize='0'`))).maxChunkSize, 256);
    assert.equal(decodeRequest(parseXml(REQ(`${GET} maxChunkSize='1024'`))).maxChunkSize, 1024);
    assert.equal(decodeRequest(parseXml(REQ(`${GET} maxChunkSize='999999999'`))).maxChunkSize, 65536);
  });
});

describe("xep0332 malformed <data> → CodecError", () => {
  const both = (inner: string): Array<[string, () => unknown]> => [
    ["request", () => decodeRequest(parseXml(REQ(GET, inner)))],
    ["response", () => decodeResponse(parseXml(RESP(OK, inner)))],
  ];

  const malformedData: Array<[string, string]> = [
    ["empty <data/>", "<data/>"],
    ["whitespace-only <data>", "<data>  \n  </data>"],
    ["text directly in <data>", "<data>hello</data>"],
    ["two forms", "<data><text>a</text><base64>YQ==</base64></data>"],
    ["two texts", "<data><text>a</text><text>b</text></data>"],
    ["unknown form", "<data><gzip>H4sI</gzip></data>"],
    ["unknown form <binary>", "<data><binary>YQ==</binary></data>"],
    ["chunkedBase64 without streamId", "<data><chunkedBase64/></data>"],
    ["chunkedBase64 with empty streamId", "<data><chunkedBase64 streamId=''/></data>"],
  ];
  for (const [label, inner] of malformedData) {
    for (const [kind, fn] of both(inner)) {
      it(`${label} (${kind}) is malformed`, () => {
        expectCodecError(fn, "malformed", label);
      });
    }
  }

  for (const form of [
    "<sipub xmlns='http://jabber.org/protocol/sipub' id='s1'/>",
    "<ibb xmlns='http://jabber.org/protocol/ibb' sid='i1'/>",
    "<jingle xmlns='urn:xmpp:jingle:1' sid='j1'/>",
  ]) {
    for (const [kind, fn] of both(`<data>${form}</data>`)) {
      it(`${form.slice(1, form.indexOf(" "))} (${kind}) is unsupported`, () => {
        expectCodecError(fn, "unsupported", form);
      });
    }
  }

  const badBase64 = ["QUJD!", "QUJ", "QQ=", "QQ===", "Q===", "====", "=", "QU=D", "=QUJ", "QUJD-_8=", "QUJD\u00e9", "QUJD RA"];
  for (const b64 of badBase64) {
    it(`<base64>${JSON.stringify(b64)} is malformed`, () => {
      expectCodecError(() => decodeResponse(parseXml(RESP(OK, `<data><base64>${b64}</base64></data>`))), "malformed", b64);
    });
  }

  it("accepts base64 with whitespace between groups and an empty <base64/>", () => {
    const wrapped = decodeResponse(parseXml(RESP(OK, "<data><base64>\n  QUJD\n  REVG\tR0g=\r\n</base64></data>")));
    assert.equal(inlineBytes(wrapped.body).toString("latin1"), "ABCDEFGH");
    const empty = decodeResponse(parseXml(RESP(OK, "<data><base64/></data>")));
    assert.equal(inlineBytes(empty.body).length, 0);
  });

  it("decodes a multi-megabyte <base64> as a Buffer, not a RangeError", () => {
    const raw = Buffer.alloc(6 * 1024 * 1024, 0xa5);
    const data = el("data", {}, el("base64", {}, raw.toString("base64")));
    assert.deepEqual(inlineBytes(decodeData(data)), raw);
    const bad = el("data", {}, el("base64", {}, `${raw.toString("base64")}!`));
    expectCodecError(() => decodeData(bad), "malformed", "large bad base64");
  });
});

describe("xep0332 malformed <headers> → CodecError", () => {
  const headers = (inner: string): string => `<headers xmlns='http://jabber.org/protocol/shim'>${inner}</headers>`;

  it("refuses a header without a name (missing or empty attribute) as malformed", () => {
    expectCodecError(() => decodeResponse(parseXml(RESP(OK, headers("<header>v</header>")))), "malformed", "missing");
    expectCodecError(() => decodeResponse(parseXml(RESP(OK, headers("<header name=''>v</header>")))), "malformed", "empty");
  });

  it("refuses a foreign element inside <headers> as malformed", () => {
    expectCodecError(() => decodeRequest(parseXml(REQ(GET, headers("<header name='A'>1</header><x/>")))), "malformed");
  });

  for (const name of ["X Y", "X:Y", "Host:", " Host", "(bad)", "a/b", "é", "X\u00a0Y", "a@b", "{x}"]) {
    it(`header name ${JSON.stringify(name)} is a bad-header`, () => {
      expectCodecError(() => decodeResponse(parseXml(RESP(OK, headers(`<header name='${name}'>v</header>`)))), "bad-header", name);
      expectCodecError(() => decodeRequest(parseXml(REQ(GET, headers(`<header name='${name}'>v</header>`)))), "bad-header", name);
    });
  }

  const badValues: Array<[string, string]> = [
    ["CR (char ref)", "a&#13;b"],
    ["LF (char ref)", "a&#10;b"],
    ["raw LF", "a\nb"],
    ["CRLF injection", "x&#13;&#10;Set-Cookie: evil=1"],
    ["outside Latin-1", "€uro"],
  ];
  for (const [label, value] of badValues) {
    it(`header value with ${label} is a bad-header`, () => {
      expectCodecError(() => decodeResponse(parseXml(RESP(OK, headers(`<header name='X-Test'>${value}</header>`)))), "bad-header", label);
    });
  }

  it("refuses a header value with NUL or other C0 controls (tree built directly) as bad-header", () => {
    for (const value of ["a\u0000b", "a\u0001b", "a\u001fb", "a\u007fb"]) {
      const node = el(
        "resp",
        { xmlns: NS_HTTP, version: "1.1", statusCode: "200" },
        el("headers", { xmlns: "http://jabber.org/protocol/shim" }, el("header", { name: "X" }, value)),
      );
      expectCodecError(() => decodeResponse(node), "bad-header", JSON.stringify(value));
    }
  });
});

// ---------------------------------------------------------------------------------- mutation robustness

describe("xep0332 decoders throw nothing but CodecError", () => {
  /** Tiny seeded PRNG (xorshift32) so a failing mutation is reproducible. */
  function prng(seed: number): () => number {
    let s = seed >>> 0 || 1;
    return () => {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s / 4294967296;
    };
  }

  const JUNK = [
    "",
    " ",
    "-1",
    "abc",
    "1.5",
    "true",
    "maybe",
    "999999999999",
    "urn:xmpp:http",
    "GET",
    "/",
    "*",
    "200",
    "1.1",
    "=",
    "\u00e9",
    "\t",
    "\n",
    "<",
    "&",
  ];

  function clone(node: XmlElement): XmlElement {
    return { name: node.name, attrs: { ...node.attrs }, children: node.children.map((c) => (typeof c === "string" ? c : clone(c))) };
  }

  function allElements(node: XmlElement, out: XmlElement[] = []): XmlElement[] {
    out.push(node);
    for (const c of childElements(node)) allElements(c, out);
    return out;
  }

  function mutate(root: XmlElement, rnd: () => number): XmlElement {
    const tree = clone(root);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
    for (let k = 1 + Math.floor(rnd() * 3); k > 0; k--) {
      const target = pick(allElements(tree));
      const keys = Object.keys(target.attrs);
      switch (Math.floor(rnd() * 7)) {
        case 0:
          if (keys.length) delete target.attrs[pick(keys)];
          break;
        case 1:
          if (keys.length) target.attrs[pick(keys)] = pick(JUNK);
          break;
        case 2:
          if (target.children.length) target.children.splice(Math.floor(rnd() * target.children.length), 1);
          break;
        case 3:
          if (target.children.length) target.children.push(target.children[0] as XmlNode);
          break;
        case 4:
          target.children = [pick(JUNK)];
          break;
        case 5:
          target.name = pick(["data", "text", "base64", "xml", "chunkedBase64", "header", "headers", "sipub", "x"]);
          break;
        default:
          target.children.push(el(pick(["text", "base64", "header", "data"]), { name: pick(JUNK) }, pick(JUNK)));
      }
    }
    return tree;
  }

  it("survives 3000 random mutations of valid requests and responses", () => {
    const rnd = prng(0xc0dec);
    const o = { chunkThreshold: 64, chunkSize: 256, newStreamId: () => "s" };
    const seeds: Array<[XmlElement, (n: XmlElement) => unknown]> = [
      [
        encodeRequest(
          {
            method: "POST",
            resource: "/a?b=1",
            headers: [
              ["Content-Type", "text/plain"],
              ["X-A", "1"],
            ],
            body: Buffer.from("hi"),
          },
          { ...o, maxChunkSize: 1024 },
        ).payload,
        decodeRequest,
      ],
      [
        encodeRequest({ method: "PUT", resource: "/b", headers: [["Content-Type", "image/png"]], body: Buffer.from([1, 2, 3]) }, o).payload,
        decodeRequest,
      ],
      [
        encodeResponse(
          { statusCode: 200, statusMessage: "OK", headers: [["Content-Type", "application/json"]], body: Buffer.from("{}") },
          o,
        ).payload,
        decodeResponse,
      ],
      [encodeResponse({ statusCode: 200, headers: [], body: Buffer.alloc(100, 1) }, o).payload, decodeResponse],
      [parseXml(RESP(OK, "<data><xml><a x='1'>t</a></xml></data>")), decodeResponse],
    ];
    let refused = 0;
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const [seed, decode] = seeds[i % seeds.length] as [XmlElement, (n: XmlElement) => unknown];
      const mutated = mutate(seed, rnd);
      try {
        decode(mutated);
        // Whatever is accepted must still serialize and decode the same way from real XML text.
        decode(parseXml(serialize(mutated)));
        accepted++;
      } catch (e) {
        if (!(e instanceof CodecError)) assert.fail(`mutation ${i} threw ${String(e)} for ${serialize(mutated)}`);
        refused++;
      }
    }
    assert.ok(refused > 500 && accepted > 100, `both outcomes exercised (refused ${refused}, accepted ${accepted})`);
  });
});
