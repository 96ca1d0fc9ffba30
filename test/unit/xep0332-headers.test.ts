/**
 * XEP-0332 codec helpers: SHIM headers (hop-by-hop stripping, raw header lists, legality), the textual
 * content-type table, the neutral XML tree and its serializer, and the constants.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  CodecError,
  HTTP_METHODS,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  NS_SHIM,
  asXmlSafeText,
  checkHeadLimits,
  childElements,
  clampChunkSize,
  decodeHeaders,
  el,
  encodeHeaders,
  encodeInlineData,
  escapeAttr,
  escapeText,
  findChild,
  fromRawHeaders,
  hasForbiddenXmlChars,
  headerValue,
  isElement,
  isHttpMethod,
  isLegalHeader,
  isTextualContentType,
  MAX_HEAD_BYTES,
  MAX_HEAD_FIELDS,
  serialize,
  stripHopByHop,
  textOf,
  type HeaderList,
  type XmlElement,
} from "../../lib/xep0332/index.js";
import { parseXml } from "../helpers/xml.js";
import { expectCodecError } from "../helpers/thrown.js";

describe("xep0332 stripHopByHop", () => {
  it("removes every hop-by-hop header, case-insensitively, and keeps the rest in order", () => {
    const input: HeaderList = [
      ["Host", "dev-17"],
      ["Connection", "keep-alive"],
      ["keep-alive", "timeout=5"],
      ["X-First", "1"],
      ["Transfer-Encoding", "chunked"],
      ["TE", "trailers"],
      ["Upgrade", "websocket"],
      ["Proxy-Connection", "keep-alive"],
      ["proxy-authorization", "Basic Zm9vOmJhcg=="],
      ["Proxy-Authenticate", "Basic"],
      ["PROXY-CUSTOM", "x"],
      ["Trailer", "Expires"],
      ["Content-Type", "text/plain"],
      ["x-first", "2"],
      ["Content-Length", "5"],
    ];
    assert.deepEqual(stripHopByHop(input), [
      ["Host", "dev-17"],
      ["X-First", "1"],
      ["Content-Type", "text/plain"],
      ["x-first", "2"],
      ["Content-Length", "5"],
    ]);
  });

  it("removes the headers the Connection header names, across several Connection headers", () => {
    const input: HeaderList = [
      ["Connection", "close, X-Hop ,x-other"],
      ["X-Hop", "a"],
      ["Keep", "yes"],
      ["X-OTHER", "b"],
      ["connection", ",, X-Third,"],
      ["x-third", "c"],
      ["X-Hopping", "not named, kept"],
      ["Close", "a header literally named close is named by 'close' too"],
    ];
    assert.deepEqual(stripHopByHop(input), [
      ["Keep", "yes"],
      ["X-Hopping", "not named, kept"],
    ]);
  });

  it("does not treat Connection tokens as prefixes or change values", () => {
    const input: HeaderList = [
      ["Connection", "x-a"],
      ["X-A-B", "kept"],
      ["X-A", "dropped"],
      ["Accept", " spaced\tvalue "],
    ];
    assert.deepEqual(stripHopByHop(input), [
      ["X-A-B", "kept"],
      ["Accept", " spaced\tvalue "],
    ]);
  });

  it("does not mutate its input and returns fresh pairs", () => {
    const pair: [string, string] = ["Accept", "*/*"];
    const input: Array<[string, string]> = [pair, ["Connection", "close"]];
    const out = stripHopByHop(input);
    assert.equal(input.length, 2);
    assert.deepEqual(out, [["Accept", "*/*"]]);
    assert.notEqual(out[0], pair);
    (out[0] as [string, string])[1] = "changed";
    assert.equal(pair[1], "*/*");
  });

  it("returns an empty list for an empty list", () => {
    assert.deepEqual(stripHopByHop([]), []);
  });
});

describe("xep0332 fromRawHeaders and headerValue", () => {
  it("pairs Node's rawHeaders, keeping case, order and repeats", () => {
    assert.deepEqual(fromRawHeaders(["Host", "a", "X-A", "1", "x-a", "2", "Set-Cookie", "c=1", "Set-Cookie", "d=2"]), [
      ["Host", "a"],
      ["X-A", "1"],
      ["x-a", "2"],
      ["Set-Cookie", "c=1"],
      ["Set-Cookie", "d=2"],
    ]);
  });

  it("handles empty input, empty values and a dangling name", () => {
    assert.deepEqual(fromRawHeaders([]), []);
    assert.deepEqual(fromRawHeaders(["X-Empty", ""]), [["X-Empty", ""]]);
    assert.deepEqual(fromRawHeaders(["A", "1", "B"]), [["A", "1"]]);
  });

  it("headerValue finds the first value case-insensitively", () => {
    const h: HeaderList = [
      ["content-type", "text/plain"],
      ["Content-Type", "image/png"],
      ["X", ""],
    ];
    assert.equal(headerValue(h, "Content-Type"), "text/plain");
    assert.equal(headerValue(h, "CONTENT-TYPE"), "text/plain");
    assert.equal(headerValue(h, "x"), "");
    assert.equal(headerValue(h, "missing"), undefined);
  });
});

describe("xep0332 header legality and SHIM encoding", () => {
  it("isLegalHeader follows RFC 9110 token / field-value", () => {
    const legal: Array<[string, string]> = [
      ["X-Custom_1.2~!#$%&'*+^`|", "v"],
      ["a", ""],
      ["Accept", "text/html, */*;q=0.8"],
      ["X", "tab\tand space and obs-text \u00e9\u00ff"],
    ];
    for (const [n, v] of legal) assert.equal(isLegalHeader(n, v), true, `${n}: ${v}`);
    const illegal: Array<[string, string]> = [
      ["", "v"],
      ["X Y", "v"],
      ["X:Y", "v"],
      ["X(Y)", "v"],
      ["X\u00e9", "v"],
      ["X", "a\rb"],
      ["X", "a\nb"],
      ["X", "a\u0000b"],
      ["X", "a\u007fb"],
      ["X", "\u0100"],
    ];
    for (const [n, v] of illegal) assert.equal(isLegalHeader(n, v), false, JSON.stringify([n, v]));
  });

  it("encodes headers as <headers xmlns=shim><header name>value</header></headers>, none for an empty list", () => {
    assert.equal(encodeHeaders([]), undefined);
    const node = encodeHeaders([
      ["A", "1"],
      ["a", "2"],
    ]) as XmlElement;
    assert.equal(node.name, "headers");
    assert.equal(node.attrs.xmlns, NS_SHIM);
    assert.equal(serialize(node), `<headers xmlns="${NS_SHIM}"><header name="A">1</header><header name="a">2</header></headers>`);
    assert.deepEqual(decodeHeaders(parseXml(serialize(node))), [
      ["A", "1"],
      ["a", "2"],
    ]);
  });

  it("decodes absent <headers> as no headers and ignores whitespace between <header> elements", () => {
    assert.deepEqual(decodeHeaders(undefined), []);
    const pretty = parseXml(`<headers xmlns='${NS_SHIM}'>\n  <header name='A'>1</header>\n  <header name='B'></header>\n</headers>`);
    assert.deepEqual(decodeHeaders(pretty), [
      ["A", "1"],
      ["B", ""],
    ]);
  });

  it("reports illegal headers as CodecError bad-header", () => {
    const node = el("headers", { xmlns: NS_SHIM }, el("header", { name: "X" }, "a\r\nInjected: 1"));
    assert.throws(
      () => decodeHeaders(node),
      (e: unknown) => e instanceof CodecError && e.reason === "bad-header",
    );
  });
});

describe("xep0332 Content-Length and head limits", () => {
  const shim = (...fields: Array<[string, string]>): XmlElement =>
    el("headers", { xmlns: NS_SHIM }, ...fields.map(([n, v]) => el("header", { name: n }, v)));

  it("accepts one Content-Length of decimal digits, in any case", () => {
    assert.deepEqual(decodeHeaders(shim(["content-length", "0"])), [["content-length", "0"]]);
    assert.deepEqual(decodeHeaders(shim(["Content-Length", "123456789012345"], ["X", "1"])), [
      ["Content-Length", "123456789012345"],
      ["X", "1"],
    ]);
  });

  it("refuses a Content-Length that is not one decimal length (RFC 9110 §8.6): a client's parser would choke on it", () => {
    const bad: Array<Array<[string, string]>> = [
      [["Content-Length", "abc"]],
      [["Content-Length", "-1"]],
      [["Content-Length", "1e3"]],
      [["Content-Length", "0x10"]],
      [["Content-Length", "1, 2"]],
      [["Content-Length", "5, 5"]],
      [["Content-Length", " 5"]],
      [["Content-Length", ""]],
      [["Content-Length", "1234567890123456"]],
      [
        ["Content-Length", "5"],
        ["content-length", "5"],
      ],
      [
        ["Content-Length", "5"],
        ["X", "y"],
        ["CONTENT-LENGTH", "6"],
      ],
    ];
    for (const fields of bad) {
      expectCodecError(() => decodeHeaders(shim(...fields)), "bad-header", JSON.stringify(fields));
    }
  });

  it(`allows ${MAX_HEAD_FIELDS} fields and refuses one more as too-large`, () => {
    const fields = (n: number): HeaderList => Array.from({ length: n }, (_, i): [string, string] => [`X-${i}`, "v"]);
    checkHeadLimits(fields(MAX_HEAD_FIELDS));
    expectCodecError(() => checkHeadLimits(fields(MAX_HEAD_FIELDS + 1)), "too-large", "one field more");
    expectCodecError(() => checkHeadLimits(fields(5000)), "too-large", "thousands");
  });

  it(`counts the head as on the wire (name: value CRLF, and the reason phrase) against ${MAX_HEAD_BYTES} bytes`, () => {
    const fill = (n: number): [string, string] => ["X", "v".repeat(n - 5)]; // "X: " + value + CRLF = n bytes
    checkHeadLimits([fill(MAX_HEAD_BYTES)]);
    expectCodecError(() => checkHeadLimits([fill(MAX_HEAD_BYTES + 1)]), "too-large", "one byte more");
    checkHeadLimits([fill(MAX_HEAD_BYTES - 10)], "0123456789");
    expectCodecError(() => checkHeadLimits([fill(MAX_HEAD_BYTES - 10)], "0123456789x"), "too-large", "reason phrase counts");
    expectCodecError(() => checkHeadLimits([], "r".repeat(MAX_HEAD_BYTES + 1)), "too-large", "a reason phrase alone");
  });

  it("takes other limits when given", () => {
    expectCodecError(
      () =>
        checkHeadLimits(
          [
            ["A", "1"],
            ["B", "2"],
          ],
          "",
          { fields: 1, bytes: 1000 },
        ),
      "too-large",
      "fields",
    );
    expectCodecError(() => checkHeadLimits([["A", "1"]], "", { fields: 10, bytes: 5 }), "too-large", "bytes");
    checkHeadLimits([["A", "1"]], "", { fields: 1, bytes: 6 });
  });
});

describe("xep0332 isTextualContentType", () => {
  const table: Array<[string | undefined, boolean]> = [
    ["text/plain", true],
    ["text/html; charset=utf-8", true],
    ["text/html;charset=UTF-8", true],
    ["TEXT/HTML; CHARSET=UTF-8", true],
    ["text/csv", true],
    ["text/plain; charset=us-ascii", true],
    ["text/plain; charset=utf8", true],
    ["text/plain; format=flowed", true],
    ['application/json; charset="utf-8"', true],
    ["application/json", true],
    ["application/problem+json", true],
    ["application/ld+json", true],
    ["application/vnd.api+json", true],
    ["application/json-patch+json", true],
    ["application/xml", true],
    ["application/atom+xml", true],
    ["application/soap+xml; charset=utf-8", true],
    ["application/javascript", true],
    ["application/ecmascript", true],
    ["application/x-www-form-urlencoded", true],
    [" text/plain ", true],
    [undefined, false],
    ["", false],
    ["text/", false],
    ["text", false],
    ["application/octet-stream", false],
    ["application/jsonx", false],
    ["application/+json", false],
    ["application/pdf", false],
    ["image/png", false],
    ["image/jpeg", false],
    ["audio/mpeg", false],
    ["font/woff2", false],
    ["multipart/form-data; boundary=xyz", false],
    ["text/plain; charset=iso-8859-1", false],
    ["text/plain; charset=latin1", false],
    ["application/json; charset=utf-16", false],
    ["text/html; charset=windows-1252", false],
    ["text/plain; charset=", false],
  ];
  for (const [contentType, expected] of table) {
    it(`${JSON.stringify(contentType)} → ${expected}`, () => {
      assert.equal(isTextualContentType(contentType), expected);
    });
  }
});

describe("xep0332 asXmlSafeText and encodeInlineData", () => {
  it("returns the text only when it would survive XML unchanged", () => {
    assert.equal(asXmlSafeText(Buffer.from("héllo\n\tworld"), "text/plain"), "héllo\n\tworld");
    assert.equal(asXmlSafeText(Buffer.from("a\r\nb"), "text/plain"), undefined);
    assert.equal(asXmlSafeText(Buffer.from("a\u0007b"), "text/plain"), undefined);
    assert.equal(asXmlSafeText(Buffer.from([0xc3]), "text/plain"), undefined);
    assert.equal(asXmlSafeText(Buffer.from("hello"), "application/octet-stream"), undefined);
    assert.equal(asXmlSafeText(Buffer.from("hello"), undefined), undefined);
  });

  it("keeps a leading BOM in the text", () => {
    const text = asXmlSafeText(Buffer.from([0xef, 0xbb, 0xbf, 0x41]), "text/plain");
    assert.equal(text, "\uFEFFA");
  });

  it("encodes no <data> for an empty body, <text> or <base64> otherwise", () => {
    assert.equal(encodeInlineData(Buffer.alloc(0), "text/plain"), undefined);
    assert.deepEqual(encodeInlineData(Buffer.from("hi"), "text/plain"), el("data", {}, el("text", {}, "hi")));
    assert.deepEqual(encodeInlineData(Buffer.from("hi"), "image/gif"), el("data", {}, el("base64", {}, "aGk=")));
  });
});

describe("xep0332 neutral XML tree", () => {
  it("el() drops undefined attributes and keeps children in order", () => {
    const node = el("a", { x: "1", y: undefined, z: "" }, "t", el("b"), "u");
    assert.deepEqual(node.attrs, { x: "1", z: "" });
    assert.equal("y" in node.attrs, false);
    assert.equal(node.children.length, 3);
  });

  it("isElement, childElements, findChild and textOf read the tree", () => {
    const root = el("r", {}, "a", el("x", { xmlns: "urn:1" }), "b", el("x", { xmlns: "urn:2" }), el("y"), "c");
    assert.equal(isElement(root), true);
    assert.equal(isElement("text"), false);
    assert.equal(isElement(null), false);
    assert.equal(isElement({ name: "x", attrs: {} }), false);
    assert.deepEqual(
      childElements(root).map((c) => c.name),
      ["x", "x", "y"],
    );
    assert.equal(findChild(root, "x")?.attrs.xmlns, "urn:1");
    assert.equal(findChild(root, "x", "urn:2")?.attrs.xmlns, "urn:2");
    assert.equal(findChild(root, "x", "urn:3"), undefined);
    assert.equal(findChild(root, "z"), undefined);
    assert.equal(textOf(root), "abc");
  });

  it("escapes text (&, <, >) and attributes (also quotes, tab, LF, CR)", () => {
    assert.equal(escapeText(`a<b>&c "'\t\n`), `a&lt;b&gt;&amp;c "'\t\n`);
    assert.equal(escapeAttr(`a<b>&c "'\t\n\r`), "a&lt;b&gt;&amp;c &quot;&apos;&#9;&#10;&#13;");
    assert.equal(escapeText("]]>"), "]]&gt;");
  });

  it("serializes self-closing, nested and escaped trees that ltx parses back", () => {
    assert.equal(serialize(el("a")), "<a/>");
    assert.equal(serialize(el("a", { k: `"v'` })), `<a k="&quot;v&apos;"/>`);
    const tree = el("a", { xmlns: "urn:x", k: "1 & 2\n3" }, "x < y", el("b", {}, "]]>"), el("c"));
    const xml = serialize(tree);
    assert.equal(xml, `<a xmlns="urn:x" k="1 &amp; 2&#10;3">x &lt; y<b>]]&gt;</b><c/></a>`);
    const back = parseXml(xml);
    assert.equal(back.attrs.k, "1 & 2\n3");
    assert.equal(textOf(back), "x < y");
    assert.equal(textOf(childElements(back)[0] as XmlElement), "]]>");
  });

  it("hasForbiddenXmlChars flags C0 controls, lone surrogates and U+FFFE/U+FFFF only", () => {
    const forbidden = [
      "\u0000",
      "\u0008",
      "\u000B",
      "\u000C",
      "\u000E",
      "\u001F",
      "\uFFFE",
      "\uFFFF",
      "\uD800",
      "a\uDBFFb",
      "\uDC00",
      "x\uDFFF",
    ];
    for (const s of forbidden) assert.equal(hasForbiddenXmlChars(s), true, JSON.stringify(s));
    const allowed = ["", "\t\n\r", " ~", "\u007F", "\u0085", "\u00A0", "\uD7FF", "\uE000", "\uFFFD", "😀", "\u{10FFFF}", "\uFEFF"];
    for (const s of allowed) assert.equal(hasForbiddenXmlChars(s), false, JSON.stringify(s));
  });
});

describe("xep0332 constants", () => {
  it("carries exactly the eight XEP-0332 methods", () => {
    assert.deepEqual([...HTTP_METHODS], ["OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH"]);
    for (const m of HTTP_METHODS) assert.equal(isHttpMethod(m), true);
    for (const m of ["CONNECT", "get", "PROPFIND", "", "GET "]) assert.equal(isHttpMethod(m), false, m);
  });

  it("clampChunkSize bounds to 256..65536 and floors", () => {
    assert.equal(MIN_CHUNK_SIZE, 256);
    assert.equal(MAX_CHUNK_SIZE, 65536);
    const cases: Array<[number, number]> = [
      [0, 256],
      [-1, 256],
      [255, 256],
      [256, 256],
      [1000.9, 1000],
      [65536, 65536],
      [65537, 65536],
      [Infinity, 65536],
      [-Infinity, 256],
    ];
    for (const [n, expected] of cases) assert.equal(clampChunkSize(n), expected, String(n));
  });
});
