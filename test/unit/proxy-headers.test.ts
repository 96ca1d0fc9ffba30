/**
 * The pass-through's request header object (gateway/proxy/headers.ts, deviceRequestHeaders) follows the one
 * rule of what a device sees of a client request (headersForDevice, also used over XMPP): hop-by-hop fields
 * (RFC 9110 §7.6.1) and those the Connection fields name dropped, the gateway's own dropped, repeats kept.
 */
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import { deviceRequestHeaders } from "../../gateway/proxy/headers.js";
import { headersForDevice } from "../../gateway/messages/device-messages.js";

/** What node hands over: the raw fields, its merged view (only Host and Connection are read from it), the socket. */
function request(raw: string[], socket: { remoteAddress?: string; encrypted?: boolean } = { remoteAddress: "10.0.0.5" }): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    if (name === "host" && headers.host === undefined) headers.host = value;
    if (name === "connection") headers.connection = headers.connection ? `${headers.connection}, ${value}` : value;
  }
  return { rawHeaders: raw, headers, socket } as unknown as IncomingMessage;
}

/** The object's fields as lines (repeats as separate lines), for comparing with the header list of the rule. */
function lines(headers: Record<string, string | string[] | undefined>): Array<[string, string]> {
  return Object.entries(headers).flatMap(([name, value]) =>
    Array.isArray(value) ? value.map((v): [string, string] => [name, v]) : [[name, String(value)]],
  );
}

const CASES: Array<[label: string, raw: string[]]> = [
  ["plain", ["Host", "gw.test", "Accept", "*/*", "User-Agent", "curl"]],
  [
    "hop-by-hop and the Connection options, in any case and after the fields they name",
    ["Host", "gw.test", "X-Trace", "a", "Keep-Alive", "timeout=5", "Proxy-Foo", "1", "TE", "trailers", "CONNECTION", "x-trace, Close"],
  ],
  ["the gateway's own fields", ["Host", "gw.test", "X-Request-Id", "client-id", "x-gateway-timeout", "500", "Accept", "a"]],
  ["repeats kept, spelling kept", ["Host", "gw.test", "X-Custom", "1", "x-custom", "2", "Cookie", "a=1", "Cookie", "b=2"]],
  ["no Host", ["Accept", "*/*"]],
];

describe("pass-through request headers (deviceRequestHeaders)", () => {
  for (const [label, raw] of CASES) {
    it(`forwards what headersForDevice forwards: ${label}`, () => {
      const out = deviceRequestHeaders(request(raw), "req-1", undefined);
      const expected = headersForDevice(raw, "req-1")
        .filter(([name]) => !["host", "content-length"].includes(name.toLowerCase()))
        .map(([name, value]): [string, string] => [name.toLowerCase(), value]);
      const got = lines(out)
        .filter(([name]) => name !== "host" && !name.startsWith("x-forwarded-"))
        .map(([name, value]): [string, string] => [name.toLowerCase(), value]);
      assert.deepEqual(got, expected);
      assert.equal(out.host, request(raw).headers.host, "Host stays the client's, for the library's changeOrigin");
      assert.equal(Object.keys(out).at(-1), "X-Request-Id", "the gateway's request id comes last");
    });
  }

  it("keeps the client's spelling, except for the names the library writes under its own", () => {
    const out = deviceRequestHeaders(request(["Host", "gw.test", "X-Custom", "1", "X-Forwarded-For", "10.0.0.1"]), "r", undefined);
    assert.deepEqual(Object.keys(out), [
      "X-Custom",
      "x-forwarded-for",
      "host",
      "x-forwarded-port",
      "x-forwarded-proto",
      "x-forwarded-host",
      "X-Request-Id",
    ]);
  });

  it("appends the client's address, port, scheme and Host to the X-Forwarded-* lists, the client's lines combined first", () => {
    const raw = ["X-Forwarded-For", "10.0.0.1", "Host", "gw.test:8080", "x-forwarded-for", "10.0.0.2", "X-Forwarded-Host", "a.test"];
    const out = deviceRequestHeaders(request(raw), "r", undefined);
    assert.equal(out["x-forwarded-for"], "10.0.0.1, 10.0.0.2,10.0.0.5");
    assert.equal(out["x-forwarded-host"], "a.test,gw.test:8080");
    assert.equal(out["x-forwarded-port"], "8080");
    assert.equal(out["x-forwarded-proto"], "http");
  });

  it("takes the port from the Host value, an IPv6 literal's after its bracket, else the scheme's", () => {
    const port = (host: string, encrypted = false) =>
      deviceRequestHeaders(request(["Host", host], { remoteAddress: "::1", encrypted }), "r", undefined)["x-forwarded-port"];
    assert.equal(port("[::1]:8080"), "8080");
    assert.equal(port("[2001:db8::17]"), "80");
    assert.equal(port("gw.test"), "80");
    assert.equal(port("gw.test", true), "443");
    assert.equal(port("gw.test:"), "80");
    const tls = deviceRequestHeaders(request(["Host", "gw.test"], { remoteAddress: "::1", encrypted: true }), "r", undefined);
    assert.equal(tls["x-forwarded-proto"], "https");
    assert.equal(tls["x-forwarded-for"], "::1");
  });

  it("without a Host (HTTP/1.0), leaves X-Forwarded-Host as the client sent it, or empty", () => {
    assert.equal(deviceRequestHeaders(request(["Accept", "*/*"]), "r", undefined)["x-forwarded-host"], "");
    assert.equal(deviceRequestHeaders(request(["X-Forwarded-Host", "a.test"]), "r", undefined)["x-forwarded-host"], "a.test");
  });

  it("puts exactly the gateway's framing on it, whatever the client sent", () => {
    const raw = ["Host", "gw.test", "Content-Length", "5", "Transfer-Encoding", "chunked"];
    assert.equal(deviceRequestHeaders(request(raw), "r", ["content-length", "3"])["content-length"], "3");
    const chunked = deviceRequestHeaders(request(raw), "r", ["transfer-encoding", "chunked"]);
    assert.equal(chunked["transfer-encoding"], "chunked");
    assert.equal(chunked["content-length"], undefined);
    const none = deviceRequestHeaders(request(raw), "r", undefined);
    assert.equal(none["content-length"], undefined);
    assert.equal(none["transfer-encoding"], undefined);
  });

  it("treats a field named __proto__ as a field", () => {
    const out = deviceRequestHeaders(request(["Host", "gw.test", "__proto__", "x"]), "r", undefined);
    assert.equal(Object.getPrototypeOf(out), null);
    assert.equal(out.__proto__, "x");
  });
});
