/**
 * RFC 9112 §3.2 Host rules (host-header.ts): one Host line, and a value that is `uri-host [ ":" port ]`;
 * missing on HTTP/1.1 or repeated on any version, 400; empty only with an absolute-form target.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { hostHeaderProblem, hostValueProblem, type HostedRequest } from "../../gateway/http/host-header.js";

function req(hosts: string[], opts: { version?: "1.0" | "1.1"; url?: string; name?: string } = {}): HostedRequest {
  const [major = 1, minor = 1] = (opts.version ?? "1.1").split(".").map(Number);
  const rawHeaders = ["Accept", "*/*", ...hosts.flatMap((h) => [opts.name ?? "Host", h]), "User-Agent", "t"];
  return { httpVersionMajor: major, httpVersionMinor: minor, url: opts.url ?? "/devices/d1/x", rawHeaders };
}

describe("Host header rules (RFC 9112 §3.2)", () => {
  it("accepts one valid Host line: names, IPv4, IPv6 literals, ports, any case of the field name", () => {
    for (const host of [
      "gw.test",
      "dev-17.devices.example.com",
      "dev-17.devices.example.com.",
      "localhost:8080",
      "10.0.0.17:80",
      "[::1]",
      "[::1]:8080",
      "[2001:db8::17]:65535",
      "x:",
      "xn--e1a.example",
      "a_b~c",
      "%41bc",
      "[v1.fe80::a+en1]",
    ]) {
      assert.equal(hostHeaderProblem(req([host])), undefined, host);
    }
    assert.equal(hostHeaderProblem(req(["gw.test"], { name: "hOsT" })), undefined);
    assert.equal(hostHeaderProblem(req([" \tgw.test\t "])), undefined, "optional whitespace around the value");
  });

  it("refuses a missing Host on HTTP/1.1, not on HTTP/1.0", () => {
    assert.match(hostHeaderProblem(req([])) ?? "", /needs a Host header/);
    assert.equal(hostHeaderProblem(req([], { version: "1.0" })), undefined);
  });

  it("refuses more than one Host line, same or different values, in either order, on any version", () => {
    for (const hosts of [
      ["gw.test", "gw.test"],
      ["gw.test", "dev-17.devices.example.com"],
      ["dev-17.devices.example.com", "gw.test"],
      ["a", "b", "c"],
      ["gw.test", ""],
      ["", "gw.test"],
    ]) {
      assert.match(hostHeaderProblem(req(hosts)) ?? "", /Host header lines/, hosts.join(" | "));
      assert.match(hostHeaderProblem(req(hosts, { version: "1.0" })) ?? "", /Host header lines/, `HTTP/1.0: ${hosts.join(" | ")}`);
    }
    const mixedCase = { ...req([]), rawHeaders: ["Host", "gw.test", "HOST", "gw.test"] };
    assert.match(hostHeaderProblem(mixedCase) ?? "", /2 Host header lines/, "the field name in any case");
  });

  it("refuses an empty Host in origin form; accepts it with an absolute-form target, whose authority wins", () => {
    assert.match(hostHeaderProblem(req([""])) ?? "", /empty/);
    assert.match(hostHeaderProblem(req(["  "])) ?? "", /empty/);
    assert.match(hostHeaderProblem(req([""], { url: "*" })) ?? "", /empty/);
    assert.equal(hostHeaderProblem(req([""], { url: "http://10.0.0.17:8080/TEMPERATURE" })), undefined);
    assert.match(
      hostHeaderProblem(req(["10.0.0.17:8080", "10.0.0.17:8080"], { url: "http://10.0.0.17:8080/x" })) ?? "",
      /Host header lines/,
    );
    assert.match(hostHeaderProblem(req(["a b"], { url: "http://10.0.0.17:8080/x" })) ?? "", /not host\[:port\]/);
  });

  it('refuses values that are not uri-host [ ":" port ]', () => {
    const bad: Record<string, RegExp> = {
      "a b": /characters/,
      "a\tb": /characters/,
      "user@x": /user info/,
      "user:pw@x:80": /user info/,
      "@x": /user info/,
      "x:99999": /port/,
      "x:65536": /port/,
      "x:0": /port/,
      "x:-1": /port/,
      "x:8o": /port/,
      "x:080808": /port/,
      ":80": /host is empty/,
      "x:80:81": /more than one colon/,
      "::1": /more than one colon/,
      "[::1": /more than one colon|stray/,
      "[zz]": /IPv6/,
      "[]": /IPv6/,
      "[::1%eth0]": /IPv6/,
      "x/y": /characters/,
      "x?y": /characters/,
      "x#y": /characters/,
      "x%zz": /characters/,
      "d\u00e9v.example": /characters/,
      "x\\y": /characters/,
    };
    for (const [value, why] of Object.entries(bad)) {
      assert.match(hostValueProblem(value) ?? "", why, value);
      assert.match(hostHeaderProblem(req([value])) ?? "", /not host\[:port\]/, value);
    }
  });

  it("a comma is a sub-delim (RFC 3986), so `x,y` is one (strange) reg-name", () => {
    assert.equal(hostValueProblem("x,y"), undefined);
  });
});
