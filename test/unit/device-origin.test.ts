// A device's httpTarget parsed once (gateway/proxy/device-origin.ts): what the pass-through connects to and
// the path it prefixes, the same answer from the cache as from a fresh parse, and non-http(s) targets refused.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DeviceOrigins, devicePath } from "../../gateway/proxy/device-origin.js";

describe("DeviceOrigins", () => {
  it("parses a target into its origin and base path, once", () => {
    const origins = new DeviceOrigins();
    const first = origins.of("http://10.0.0.17:8080/api/");
    assert.ok(first);
    assert.deepEqual([first.origin.href, first.https, first.pathPrefix], ["http://10.0.0.17:8080/", false, "/api"]);
    assert.equal(origins.of("http://10.0.0.17:8080/api/"), first, "the same object from the cache");
    assert.equal(devicePath(first, "/TEMPERATURE/"), "/api/TEMPERATURE/");
    assert.equal(devicePath(first, "BULB/ON"), "/api/BULB/ON");
  });

  it("keeps https, IPv6 hosts and default ports; a bare origin has no prefix", () => {
    const origins = new DeviceOrigins();
    const tls = origins.of("https://[::1]:8443");
    assert.deepEqual([tls?.origin.hostname, tls?.origin.port, tls?.https, tls?.pathPrefix], ["[::1]", "8443", true, ""]);
    assert.equal(devicePath(tls!, "/x"), "/x");
    assert.equal(origins.of("http://dev.example.com///")?.pathPrefix, "");
  });

  it("refuses what is not an http(s) URL, every time", () => {
    const origins = new DeviceOrigins();
    for (const target of ["ftp://10.0.0.1/", "not a url", "", "file:///etc/passwd"]) {
      assert.equal(origins.of(target), undefined, target);
      assert.equal(origins.of(target), undefined, `${target}, from the cache`);
    }
  });

  it("stays bounded: past its size it starts over, and still answers", () => {
    const origins = new DeviceOrigins();
    for (let i = 0; i < 10_050; i++) assert.equal(origins.of(`http://10.0.${i >> 8}.${i & 255}:80/`)?.https, false);
    assert.equal(origins.of("http://10.0.0.1:80/")?.origin.host, "10.0.0.1");
  });
});
