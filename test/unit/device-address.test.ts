/**
 * Path addressing (`/devices/{deviceId}/{rest}`, README, "Device requests") and the per-request deadline a client may
 * shorten with X-Gateway-Timeout.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { GatewayError } from "../../gateway/errors.js";
import { parseDevicePath } from "../../gateway/http/device-address.js";
import { canonicalDeviceId, isDeviceId } from "../../gateway/registry/device-id.js";
import { deadlineMs } from "../../gateway/delivery/deliver.js";

function badId(rawUrl: string): GatewayError {
  let caught: unknown;
  try {
    parseDevicePath(rawUrl);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof GatewayError, `${JSON.stringify(rawUrl)} should be refused, got ${String(caught)}`);
  assert.equal(caught.code, "GW_BAD_DEVICE_ID", rawUrl);
  assert.equal(caught.status, 400);
  return caught;
}

describe("parseDevicePath: accepted", () => {
  it("takes a one-character id", () => {
    assert.deepEqual(parseDevicePath("/devices/a/x"), { deviceId: "a", resource: "/x" });
  });

  it("takes a 64-character id", () => {
    const id = "A".repeat(32) + "z".repeat(31) + "9";
    assert.equal(id.length, 64);
    assert.deepEqual(parseDevicePath(`/devices/${id}/x`), { deviceId: id.toLowerCase(), resource: "/x" });
  });

  it("takes dots, dashes and underscores, and answers the canonical (lower-case) id", () => {
    assert.equal(parseDevicePath("/devices/Dev-17.floor_2/x").deviceId, "dev-17.floor_2");
    assert.equal(canonicalDeviceId("DEV-17"), "dev-17");
    for (const bad of ["", ".", "..", "a/b", "é"]) assert.equal(canonicalDeviceId(bad), undefined, bad);
  });

  it("keeps the rest and the raw query byte-exact, percent-escapes included", () => {
    const rest = "/BULB/ON%20NOW/a%2Fb/%E2%82%AC/;p=1/./../x//y";
    const query = "?x=1&y=%2F%20+z&x=2&empty=&%00=%FF#";
    assert.deepEqual(parseDevicePath(`/devices/dev-17${rest}${query}`), { deviceId: "dev-17", resource: rest + query });
  });

  it("maps /devices/{id} to the resource /", () => {
    assert.deepEqual(parseDevicePath("/devices/dev-17"), { deviceId: "dev-17", resource: "/" });
  });

  it("maps /devices/{id}/ to the resource /", () => {
    assert.deepEqual(parseDevicePath("/devices/dev-17/"), { deviceId: "dev-17", resource: "/" });
  });

  it("maps /devices/{id}?x=1 to /?x=1", () => {
    assert.deepEqual(parseDevicePath("/devices/dev-17?x=1"), { deviceId: "dev-17", resource: "/?x=1" });
  });

  it("keeps slashes and question marks inside the query", () => {
    assert.deepEqual(parseDevicePath("/devices/d?next=/a/b?c"), { deviceId: "d", resource: "/?next=/a/b?c" });
    assert.deepEqual(parseDevicePath("/devices/d/p?q=/r"), { deviceId: "d", resource: "/p?q=/r" });
  });

  it("keeps an empty query marker", () => {
    assert.deepEqual(parseDevicePath("/devices/d/p?"), { deviceId: "d", resource: "/p?" });
  });
});

describe("parseDevicePath: refused with GW_BAD_DEVICE_ID", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["an empty id", "/devices//x"],
    ["an empty id at the end", "/devices/"],
    ["an empty id before the query", "/devices/?x=1"],
    ["a 65-character id", `/devices/${"a".repeat(65)}/x`],
    ["an @ in the id", "/devices/dev@host/x"],
    ["an encoded slash in the id", "/devices/a%2Fb/x"],
    ["an encoded NUL in the id", "/devices/a%00/x"],
    ["a non-ASCII id", "/devices/gerät/x"],
    ["a space in the id", "/devices/a b/x"],
    ["a colon in the id", "/devices/a:b/x"],
    ["no id at all", "/devices"],
    ["another prefix", "/other/dev-17/x"],
    ["a longer first segment", "/devicesX/dev-17/x"],
    ["the root", "/"],
    ["an absolute URI", "http://gw/devices/dev-17/x"],
  ];
  for (const [label, url] of cases) {
    it(label, () => {
      badId(url);
    });
  }

  it("names the offending id in the message, shortened", () => {
    assert.ok(badId("/devices/a%2Fb/x").message.includes("a%2Fb"));
    const long = badId(`/devices/${"x".repeat(500)}/y`).message;
    assert.ok(long.length < 200, `message is ${long.length} characters`);
  });

  it("isDeviceId is the §2 rule, less the dot-segments . and ..", () => {
    for (const ok of ["a", "0", "A.b-c_d", "x".repeat(64), "...", ".a", "a.."]) assert.equal(isDeviceId(ok), true, ok);
    for (const bad of ["", "x".repeat(65), "a/b", "a\nb", "a+b", "a~b", "é", ".", ".."]) assert.equal(isDeviceId(bad), false, bad);
  });
});

/** Just enough of a request for deadlineMs: its header fields, names in lower case as node's parser gives them. */
function fakeRequest(headers: Record<string, string> = {}): { headers: Record<string, string> } {
  return { headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])) };
}

describe("deadlineMs", () => {
  it("is the configured deadline without the header", () => {
    assert.equal(deadlineMs(fakeRequest(), 30_000), 30_000);
  });

  it("is shortened by X-Gateway-Timeout", () => {
    assert.equal(deadlineMs(fakeRequest({ "X-Gateway-Timeout": "1500" }), 30_000), 1500);
    assert.equal(deadlineMs(fakeRequest({ "x-gateway-timeout": "1" }), 30_000), 1);
  });

  it("is never lengthened by X-Gateway-Timeout", () => {
    assert.equal(deadlineMs(fakeRequest({ "X-Gateway-Timeout": "60000" }), 30_000), 30_000);
    assert.equal(deadlineMs(fakeRequest({ "X-Gateway-Timeout": "999999999" }), 30_000), 30_000);
    assert.equal(deadlineMs(fakeRequest({ "X-Gateway-Timeout": "30000" }), 30_000), 30_000);
  });

  for (const garbage of ["", "0", "-100", "abc", "1.5", "1e3", "0x10", "+100", "100ms", "100, 200", "1234567890", " "]) {
    it(`ignores X-Gateway-Timeout ${JSON.stringify(garbage)}`, () => {
      assert.equal(deadlineMs(fakeRequest({ "X-Gateway-Timeout": garbage }), 30_000), 30_000);
    });
  }
});
