/**
 * The check a legacy device's response head passes before the pass-through relays it, or the device agent
 * carries it (lib/http/response-head.ts), and its agreement with what node's own writer accepts: whatever the check lets through,
 * `writeHead`/`appendHeader` must never throw on.
 */
import assert from "node:assert/strict";
import http, { ServerResponse, IncomingMessage } from "node:http";
import { Socket } from "node:net";
import { describe, it } from "node:test";
import { checkResponseHead, type ResponseHead } from "../../lib/http/response-head.js";

function head(statusCode: number | undefined, statusMessage = "OK", rawHeaders: string[] = []): ResponseHead {
  return { statusCode, statusMessage, rawHeaders };
}

function reasonOf(h: ResponseHead): string | undefined {
  const v = checkResponseHead(h);
  return v.ok ? undefined : v.reason;
}

/** Whether node would write this head: a ServerResponse on a socket that goes nowhere. */
function nodeWrites(h: ResponseHead): boolean {
  const res = new ServerResponse(new IncomingMessage(new Socket()));
  try {
    for (let i = 0; i + 1 < h.rawHeaders.length; i += 2) res.appendHeader(h.rawHeaders[i] as string, h.rawHeaders[i + 1] as string);
    res.writeHead(h.statusCode ?? 0, h.statusMessage ?? "");
    return true;
  } catch {
    return false;
  }
}

describe("checkResponseHead: status code", () => {
  it("relays every final status of RFC 9110 §15, 200..599", () => {
    for (const status of [200, 204, 299, 301, 304, 404, 418, 500, 599]) assert.equal(reasonOf(head(status)), undefined, String(status));
  });

  it("refuses what llhttp parses but is no valid status: 000, 099, 600, 999, and none at all", () => {
    for (const status of [0, 99, 600, 999, 1000, undefined]) assert.equal(reasonOf(head(status)), "status", String(status));
  });

  it("refuses interim statuses as a final response, 101 included (the gateway never asks for an upgrade)", () => {
    for (const status of [100, 101, 102, 103, 199]) assert.equal(reasonOf(head(status)), "interim-status", String(status));
  });
});

describe("checkResponseHead: version (RFC 9112 §2.3)", () => {
  it("relays HTTP/1.0 and HTTP/1.1, refuses any other major version", () => {
    assert.equal(reasonOf({ ...head(200), httpVersionMajor: 1 }), undefined);
    assert.equal(reasonOf({ ...head(200), httpVersionMajor: 2 }), "version");
    assert.equal(reasonOf({ ...head(200), httpVersionMajor: 0 }), "version");
  });
});

describe("checkResponseHead: reason phrase (RFC 9112 §4)", () => {
  it("takes HTAB, SP, VCHAR and obs-text, and an empty phrase", () => {
    for (const reason of ["", "OK", "Not Found", "a\tb", "Ça va \xe9\xff", "~!@#$%^&*()"])
      assert.equal(reasonOf(head(200, reason)), undefined, reason);
  });

  it("refuses NUL, DEL, CR, LF and every other control character", () => {
    for (let c = 0; c < 0x20; c++) {
      if (c === 0x09) continue;
      assert.equal(reasonOf(head(200, `O${String.fromCharCode(c)}K`)), "reason-phrase", `0x${c.toString(16)}`);
    }
    assert.equal(reasonOf(head(200, "O\x7fK")), "reason-phrase");
  });

  it("agrees with node's writeHead on every byte: what it relays, node writes", () => {
    for (let c = 0; c < 0x100; c++) {
      const h = head(200, `a${String.fromCharCode(c)}b`);
      if (reasonOf(h) === undefined) assert.ok(nodeWrites(h), `0x${c.toString(16)} passes the check but node refuses it`);
    }
  });
});

describe("checkResponseHead: header fields (RFC 9110 §5)", () => {
  it("takes token names and values of VCHAR, obs-text, SP and HTAB", () => {
    assert.equal(reasonOf(head(200, "OK", ["Content-Type", "text/plain", "X-A!#$%&'*+-.^_`|~1", "a \t b \xe9", "X-Empty", ""])), undefined);
  });

  it("refuses names that are not tokens: spaces, colons, separators, control and non-ASCII bytes", () => {
    for (const name of ["X A", "X-A ", "X:A", "X(A)", "X\x01A", "X\xe9", ""]) {
      assert.equal(reasonOf(head(200, "OK", [name, "v"])), "header-name", JSON.stringify(name));
    }
  });

  it("refuses values with NUL, CR, LF (an obs-fold left in), DEL or other controls", () => {
    for (const value of ["a\x00b", "a\rb", "a\r\n b", "a\nb", "a\x7fb", "a\x1bb"]) {
      assert.equal(reasonOf(head(200, "OK", ["X-A", value])), "header-value", JSON.stringify(value));
    }
  });

  it("agrees with node: every field it relays, node's validators take", () => {
    for (let c = 0; c < 0x100; c++) {
      const ch = String.fromCharCode(c);
      for (const raw of [
        [`X${ch}`, "v"],
        ["X-A", `a${ch}b`],
      ]) {
        const h = head(200, "OK", raw);
        if (reasonOf(h) !== undefined) continue;
        assert.doesNotThrow(() => http.validateHeaderName(raw[0] as string), JSON.stringify(raw));
        assert.doesNotThrow(() => http.validateHeaderValue(raw[0] as string, raw[1] as string), JSON.stringify(raw));
        assert.ok(nodeWrites(h), JSON.stringify(raw));
      }
    }
  });

  it("refuses more fields than a device reply over XMPP may have", () => {
    const many = (n: number) => Array.from({ length: n }, (_, i) => [`X-${i}`, "v"]).flat();
    assert.equal(reasonOf(head(200, "OK", many(100))), undefined);
    assert.equal(reasonOf(head(200, "OK", many(101))), "header-count");
  });

  it("refuses a Transfer-Encoding whose last coding is not chunked, across repeated fields", () => {
    assert.equal(reasonOf(head(200, "OK", ["Transfer-Encoding", "chunked"])), undefined);
    assert.equal(reasonOf(head(200, "OK", ["Transfer-Encoding", "gzip, chunked"])), undefined);
    assert.equal(reasonOf(head(200, "OK", ["Transfer-Encoding", "gzip"])), "transfer-coding");
    assert.equal(reasonOf(head(200, "OK", ["Transfer-Encoding", "chunked, gzip"])), "transfer-coding");
    assert.equal(reasonOf(head(200, "OK", ["Transfer-Encoding", "chunked", "transfer-encoding", "gzip"])), "transfer-coding");
  });
});
