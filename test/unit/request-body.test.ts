/**
 * hasBody (gateway/http/body.ts): which requests have a body to read and hold in the memory budget
 * (RFC 9112 §6.3). A request the predicate calls bodiless never gets a reservation, so it must not miss one.
 */
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import { hasBody } from "../../gateway/http/body.js";

const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;

describe("hasBody", () => {
  it("is false without Content-Length and Transfer-Encoding, and for Content-Length 0", () => {
    assert.equal(hasBody(request({})), false);
    assert.equal(hasBody(request({ "content-length": "0" })), false);
  });

  it("is true for a length above 0 and for any Transfer-Encoding", () => {
    assert.equal(hasBody(request({ "content-length": "1" })), true);
    assert.equal(hasBody(request({ "content-length": "00" })), true, "not the literal 0: read it (it is empty)");
    assert.equal(hasBody(request({ "transfer-encoding": "chunked" })), true);
    assert.equal(hasBody(request({ "transfer-encoding": "gzip, chunked" })), true);
  });
});
