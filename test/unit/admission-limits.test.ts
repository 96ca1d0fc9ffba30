import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { clientKey, parseClientKeyMode } from "../../gateway/limits/client-key.js";
import { InFlightCap } from "../../gateway/limits/in-flight-cap.js";

/** Just the two fields clientKey reads. */
function request(remoteAddress: string, headers: Record<string, string> = {}): IncomingMessage {
  return { socket: { remoteAddress }, headers } as unknown as IncomingMessage;
}

/** A response as whenClosed sees it: `close` once (node's emitCloseNT), when `close()` is first called. */
function response(): ServerResponse & { close(): void } {
  const res = new EventEmitter() as unknown as ServerResponse & { close(): void };
  let closed = false;
  Object.defineProperty(res, "closed", { get: () => closed });
  Object.assign(res, {
    close: () => {
      if (closed) return;
      closed = true;
      res.emit("close");
    },
  });
  return res;
}

describe("InFlightCap", () => {
  it("lets `max` in, refuses the next, and takes one again once a response is over", () => {
    const cap = new InFlightCap(2);
    const first = response();
    assert.ok(cap.holdUntilClosed(first));
    assert.ok(cap.holdUntilClosed(response()));
    assert.equal(cap.holdUntilClosed(response()), false);
    assert.equal(cap.size, 2);
    first.close();
    assert.equal(cap.size, 1);
    assert.ok(cap.holdUntilClosed(response()));
  });

  it("gives the place back at once when the response is already over", async () => {
    const cap = new InFlightCap(1);
    const res = response();
    res.close();
    assert.ok(cap.holdUntilClosed(res));
    assert.equal(cap.size, 1, "given back after the caller's code, not in the middle of it");
    await Promise.resolve();
    assert.equal(cap.size, 0);
    assert.ok(cap.holdUntilClosed(response()));
  });
});

describe("client keys", () => {
  it("parses the three modes and refuses anything else", () => {
    assert.deepEqual(parseClientKeyMode("ip"), { kind: "ip" });
    assert.deepEqual(parseClientKeyMode("x-forwarded-for"), { kind: "x-forwarded-for" });
    assert.deepEqual(parseClientKeyMode("header:X-Api-Key"), { kind: "header", name: "x-api-key" });
    for (const bad of ["", "IP", "header:", "header:bad name", "header:a:b", "cookie:x"]) {
      assert.equal(parseClientKeyMode(bad), undefined, bad);
    }
  });

  it("ip: the TCP peer, whatever the headers claim", () => {
    const mode = { kind: "ip" } as const;
    assert.equal(clientKey(request("10.0.0.1", { "x-forwarded-for": "1.1.1.1" }), mode), clientKey(request("10.0.0.1"), mode));
    assert.notEqual(clientKey(request("10.0.0.1"), mode), clientKey(request("10.0.0.2"), mode));
  });

  it("x-forwarded-for: the right-most address (the load balancer's), never the client's own claims", () => {
    const mode = { kind: "x-forwarded-for" } as const;
    const viaLb = clientKey(request("10.0.0.9", { "x-forwarded-for": "6.6.6.6, 192.0.2.7" }), mode);
    assert.equal(
      viaLb,
      clientKey(request("10.0.0.9", { "x-forwarded-for": "7.7.7.7, 192.0.2.7" }), mode),
      "a forged left part changes nothing",
    );
    assert.notEqual(viaLb, clientKey(request("10.0.0.9", { "x-forwarded-for": "192.0.2.8" }), mode));
    assert.equal(clientKey(request("10.0.0.9"), mode), clientKey(request("10.0.0.9"), { kind: "ip" }), "no header: the peer");
  });

  it("header: the value, else the peer; a value equal to an address is still another client", () => {
    const mode = { kind: "header", name: "x-tenant" } as const;
    assert.equal(
      clientKey(request("10.0.0.1", { "x-tenant": "acme" }), mode),
      clientKey(request("10.0.0.2", { "x-tenant": "acme" }), mode),
    );
    assert.notEqual(
      clientKey(request("10.0.0.1", { "x-tenant": "acme" }), mode),
      clientKey(request("10.0.0.1", { "x-tenant": "other" }), mode),
    );
    assert.equal(clientKey(request("10.0.0.1"), mode), clientKey(request("10.0.0.1"), { kind: "ip" }));
    assert.notEqual(clientKey(request("10.0.0.1", { "x-tenant": "10.0.0.1" }), mode), clientKey(request("10.0.0.1"), mode));
  });

  it("is a short hash: bounded, and no header value in clear", () => {
    const key = clientKey(request("10.0.0.1", { "x-api-key": "s3cret-".repeat(500) }), { kind: "header", name: "x-api-key" });
    assert.match(key, /^[A-Za-z0-9_-]{22}$/);
  });
});
