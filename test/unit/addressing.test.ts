/**
 * DeviceAddressing (README, "Device requests"): which device a request is for, from its raw target and Host header, in
 * path, Host and forward-proxy mode; CONNECT and every non-device absolute URI refused (never an open proxy).
 * The registry is a fake that records its lookups: the URI's host is only ever a key, never connected to.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { normalizeLegacyAddress } from "../../lib/legacy-address.js";
import { GatewayError, type ErrorCode } from "../../gateway/errors.js";
import { DEVICE_METHODS, DeviceAddressing, MAX_TARGET_LENGTH, type AddressedDevice } from "../../gateway/http/addressing.js";
import { answerConnect } from "../../gateway/http/connect.js";
import { parseDevicePath } from "../../gateway/http/device-address.js";

const SUFFIX = "devices.example.com";

/** The registry's forward-proxy index, as RedisDeviceRegistry answers it (any spelling of an address). */
class FakeRegistry {
  readonly lookups: string[] = [];
  failure: Error | undefined;
  constructor(private readonly owners: Record<string, string>) {}

  findByLegacyAddress(hostPort: string): Promise<{ id: string } | undefined> {
    this.lookups.push(hostPort);
    if (this.failure) return Promise.reject(this.failure);
    const address = normalizeLegacyAddress(hostPort);
    const id = address === undefined ? undefined : this.owners[address];
    return Promise.resolve(id === undefined ? undefined : { id });
  }
}

function setup(hostSuffix?: string) {
  const registry = new FakeRegistry({
    "10.0.0.17:8080": "dev-17",
    "10.0.0.18:80": "dev-18",
    "[::1]:8080": "dev-v6",
    "meter.lan:8080": "meter",
  });
  const addressing = new DeviceAddressing(hostSuffix === undefined ? {} : { hostSuffix }, { registry });
  const address = (url: string, headers: IncomingHttpHeaders = {}, method = "GET") => addressing.address({ method, url, headers });
  return { registry, addressing, address };
}

async function refused(promise: Promise<unknown>, code: ErrorCode, status: number, message?: RegExp): Promise<GatewayError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof GatewayError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.status, status);
  if (message) assert.match(caught.message, message);
  return caught;
}

describe("path mode: /devices/{id}/{rest}, as parseDevicePath", () => {
  const { address } = setup(SUFFIX);

  for (const url of [
    "/devices/dev-17/TEMPERATURE",
    "/devices/dev-17",
    "/devices/dev-17/",
    "/devices/d?x=1",
    "/devices/Dev-17.f_2/a%2Fb/?q=%20&q=2#",
    "/devices/d?next=/a/b?c",
  ]) {
    it(`${url} → the same as parseDevicePath`, async () => {
      assert.deepEqual(await address(url, { host: "gateway.example.com" }), { ...parseDevicePath(url), mode: "path" });
    });
  }

  for (const url of ["/devices", "/devices/", "/devices?x=1", "/devices//x", `/devices/${"a".repeat(65)}/x`, "/devices/a%2Fb/x"]) {
    it(`${url} → 400 GW_BAD_DEVICE_ID`, async () => {
      await refused(address(url), "GW_BAD_DEVICE_ID", 400);
    });
  }

  for (const url of [
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/admin/devices",
    "/requests/abc",
    "/devicesX/dev-17/x",
    "/Devices/dev-17/x",
    "/other/devices/x",
  ]) {
    it(`${url} → not a device request`, async () => {
      assert.equal(await address(url, { host: "gateway.example.com" }), undefined);
    });
  }

  it("works without a Host header (HTTP/1.0) and without a suffix configured", async () => {
    const { address: bare } = setup();
    assert.deepEqual(await bare("/devices/d/x"), { deviceId: "d", resource: "/x", mode: "path" });
  });

  it("prefers Express's originalUrl, which mounted routers do not rewrite", async () => {
    const { addressing } = setup();
    const got = await addressing.address({ method: "GET", url: "/x", originalUrl: "/devices/d/x", headers: {} });
    assert.deepEqual(got, { deviceId: "d", resource: "/x", mode: "path" });
  });
});

describe("Host mode: Host: {id}.{GATEWAY_DEVICE_HOST_SUFFIX}", () => {
  const { address, registry } = setup(SUFFIX);

  it("names the device; it sees the raw target, byte for byte", async () => {
    const target = "/TEMPERATURE/a%2Fb/%E2%82%AC?x=1&y=%20+z&x=2";
    assert.deepEqual(await address(target, { host: `dev-17.${SUFFIX}` }), { deviceId: "dev-17", resource: target, mode: "host" });
  });

  it("ignores the port", async () => {
    assert.equal((await address("/x", { host: `dev-17.${SUFFIX}:8080` }))?.deviceId, "dev-17");
    assert.equal((await address("/x", { host: `dev-17.${SUFFIX}:` }))?.deviceId, "dev-17");
  });

  it("matches the suffix in any case, and answers the canonical (lower-case) id", async () => {
    assert.deepEqual(await address("/x", { host: "Dev-17.DEVICES.Example.COM" }), { deviceId: "dev-17", resource: "/x", mode: "host" });
  });

  it("takes a configured suffix in any case, with a trailing dot", async () => {
    const { address: upper } = setup("Devices.Example.Com.");
    assert.equal((await upper("/x", { host: `d.${SUFFIX}` }))?.deviceId, "d");
  });

  it("accepts the absolute (FQDN) spelling with a trailing dot", async () => {
    assert.equal((await address("/x", { host: `dev-17.${SUFFIX}.:80` }))?.deviceId, "dev-17");
  });

  it("takes ids with dots (the label is everything before the suffix)", async () => {
    assert.equal((await address("/x", { host: `dev-17.floor_2.${SUFFIX}` }))?.deviceId, "dev-17.floor_2");
  });

  it("wins over the path: the device sees /devices/… as its own path", async () => {
    assert.deepEqual(await address("/devices/other/x", { host: `dev-17.${SUFFIX}` }), {
      deviceId: "dev-17",
      resource: "/devices/other/x",
      mode: "host",
    });
  });

  it("addresses the device for paths the gateway also serves (/healthz is the device's own)", async () => {
    assert.deepEqual(await address("/healthz", { host: `dev-17.${SUFFIX}` }), { deviceId: "dev-17", resource: "/healthz", mode: "host" });
  });

  it("leaves the suffix itself, other hosts and look-alikes to the gateway", async () => {
    for (const host of [
      SUFFIX,
      `${SUFFIX}:8080`,
      "gateway.example.com",
      `dev-17.${SUFFIX}.evil.com`,
      `dev-17-${SUFFIX}`,
      `dev-17${SUFFIX}`,
      "example.com",
      "[::1]:8080",
      "127.0.0.1",
      "10.0.0.17:8080",
    ]) {
      assert.equal(await address("/healthz", { host }), undefined, host);
      assert.deepEqual(await address("/devices/d/x", { host }), { deviceId: "d", resource: "/x", mode: "path" }, host);
    }
    assert.equal(registry.lookups.length, 0);
  });

  for (const [label, host] of [
    ["an empty label", `.${SUFFIX}`],
    ["a 65-character label", `${"a".repeat(65)}.${SUFFIX}`],
    ["a label with a percent escape", `a%2Fb.${SUFFIX}`],
    ["a label with a plus", `a+b.${SUFFIX}`],
    ["a non-ASCII label", `gerät.${SUFFIX}`],
  ] as const) {
    it(`refuses ${label} under the suffix with 400 GW_BAD_DEVICE_ID`, async () => {
      await refused(address("/x", { host }), "GW_BAD_DEVICE_ID", 400, /not a device id/);
    });
  }

  it("is off without a suffix configured", async () => {
    const { address: off } = setup();
    assert.equal(await off("/x", { host: `dev-17.${SUFFIX}` }), undefined);
  });

  it("refuses asterisk-form for a device (it sees origin-form paths only)", async () => {
    await refused(address("*", { host: `dev-17.${SUFFIX}` }, "OPTIONS"), "GW_BAD_DEVICE_ID", 400, /origin-form/);
  });

  it("leaves asterisk-form for the gateway itself to the gateway", async () => {
    assert.equal(await address("*", { host: SUFFIX }, "OPTIONS"), undefined);
  });

  it("refuses a target over the length limit", async () => {
    const target = `/${"a".repeat(MAX_TARGET_LENGTH)}`;
    await refused(address(target, { host: `dev-17.${SUFFIX}` }), "GW_BAD_DEVICE_ID", 400, /8193 characters long; at most 8192/);
  });
});

describe("forward-proxy mode: an absolute-form target names a registered legacy address", () => {
  it("finds the device that registered host:port; it sees path and query byte for byte", async () => {
    const { address, registry } = setup(SUFFIX);
    const rest = "/TEMPERATURE/a%2Fb/%E2%82%AC;p=1/./../x//y?x=1&y=%2F%20+z&x=2&empty=&%00=%FF";
    assert.deepEqual(await address(`http://10.0.0.17:8080${rest}`), { deviceId: "dev-17", resource: rest, mode: "proxy" });
    assert.deepEqual(registry.lookups, ["10.0.0.17:8080"]);
  });

  it("takes port 80 when the URI has none, or an empty one", async () => {
    const { address, registry } = setup();
    assert.equal((await address("http://10.0.0.18/x"))?.deviceId, "dev-18");
    assert.equal((await address("http://10.0.0.18:/x"))?.deviceId, "dev-18");
    assert.equal((await address("http://10.0.0.18:00080/x"))?.deviceId, "dev-18");
    assert.deepEqual(registry.lookups, ["10.0.0.18:80", "10.0.0.18:80", "10.0.0.18:80"]);
  });

  it("maps an empty path to / and keeps a bare query (RFC 9112 §3.2.2)", async () => {
    const { address } = setup();
    assert.equal((await address("http://10.0.0.17:8080"))?.resource, "/");
    assert.equal((await address("http://10.0.0.17:8080?x=1"))?.resource, "/?x=1");
    assert.equal((await address("http://10.0.0.17:8080/"))?.resource, "/");
  });

  it("reads scheme and host in any case", async () => {
    const { address, registry } = setup();
    assert.deepEqual(await address("HTTP://METER.LAN:8080/BULB/ON"), { deviceId: "meter", resource: "/BULB/ON", mode: "proxy" });
    assert.deepEqual(await address("hTtP://Meter.Lan:8080/"), { deviceId: "meter", resource: "/", mode: "proxy" });
    assert.deepEqual(registry.lookups, ["meter.lan:8080", "meter.lan:8080"]);
  });

  it("reads IPv6 literals in any spelling", async () => {
    const { address, registry } = setup();
    assert.equal((await address("http://[::1]:8080/x"))?.deviceId, "dev-v6");
    assert.equal((await address("http://[0:0:0:0:0:0:0:1]:8080/x"))?.deviceId, "dev-v6");
    assert.deepEqual(registry.lookups, ["[::1]:8080", "[::1]:8080"]);
  });

  it("uses the URI's authority, not a Host header that disagrees (RFC 9112 §3.2.2)", async () => {
    const { address } = setup(SUFFIX);
    assert.equal((await address("http://10.0.0.17:8080/x", { host: "10.0.0.18:80" }))?.deviceId, "dev-17");
    assert.equal((await address("http://10.0.0.17:8080/x", { host: `other.${SUFFIX}` }))?.deviceId, "dev-17");
    await refused(address("http://10.0.0.99:8080/x", { host: "10.0.0.17:8080" }), "GW_NOT_A_DEVICE", 403);
  });

  it("applies Host mode to the URI's host when it is under the suffix", async () => {
    const { address, registry } = setup(SUFFIX);
    assert.deepEqual(await address(`http://Dev-17.${SUFFIX}:8080/x?y`, { host: "ignored" }), {
      deviceId: "dev-17",
      resource: "/x?y",
      mode: "host",
    });
    await refused(address(`http://bad+id.${SUFFIX}/x`), "GW_BAD_DEVICE_ID", 400);
    assert.equal(registry.lookups.length, 0);
  });

  it("refuses an address no device owns: 403 GW_NOT_A_DEVICE, never an open proxy", async () => {
    const { address } = setup();
    for (const url of [
      "http://10.0.0.99:8080/x",
      "http://10.0.0.17:8081/x",
      "http://10.0.0.17/x",
      "http://example.com/",
      "http://127.0.0.1:6379/",
      "http://169.254.169.254/latest/meta-data/",
    ]) {
      await refused(address(url), "GW_NOT_A_DEVICE", 403, /not a registered device's address/);
    }
  });

  it("refuses, without a lookup, well-formed hosts no device can have registered", async () => {
    const { address, registry } = setup();
    // RFC 3986 reg-names and RFC 6874 zone ids are valid URI syntax; the registry only holds host names,
    // dotted-decimal IPv4 and zone-less IPv6.
    for (const url of [
      "http://my_host:8080/",
      "http://%31%30.0.0.17:8080/",
      "http://1.2.3:80/",
      "http://0x7f.0.0.1/",
      "http://[fe80::1%25eth0]:80/",
    ]) {
      const err = await refused(address(url), "GW_NOT_A_DEVICE", 403);
      assert.ok(err.message.length < 300);
    }
    assert.deepEqual(registry.lookups, []);
  });

  it("refuses https:// and other schemes with 403 GW_NOT_A_DEVICE, before any lookup", async () => {
    const { address, registry } = setup();
    for (const url of [
      "https://10.0.0.17:8080/x",
      "HTTPS://10.0.0.17:8080/",
      "ftp://10.0.0.17/x",
      "ws://10.0.0.17:8080/x",
      "file:///etc/passwd",
    ]) {
      await refused(address(url), "GW_NOT_A_DEVICE", 403, /targets are not carried/);
    }
    assert.deepEqual(registry.lookups, []);
  });

  const malformed: ReadonlyArray<readonly [string, string, RegExp]> = [
    ["user info", "http://user:pw@10.0.0.17:8080/x", /user info/],
    ["user info without a password", "http://user@10.0.0.17:8080/x", /user info/],
    ["user info hiding the real host", "http://10.0.0.17:8080@10.0.0.99/x", /user info/],
    ["an empty authority", "http:///x", /without a host/],
    ["a port and no host", "http://:8080/x", /without a host/],
    ["port 0", "http://10.0.0.17:0/x", /1-65535/],
    ["port 65536", "http://10.0.0.17:65536/x", /1-65535/],
    ["a huge port", "http://10.0.0.17:99999999999999999999/x", /1-65535/],
    ["a port that is not a number", "http://10.0.0.17:80a/x", /not host\[:port\]/],
    ["two colons", "http://10.0.0.17:80:80/x", /not host\[:port\]/],
    ["an unbracketed IPv6 address", "http://::1:8080/x", /not host\[:port\]/],
    ["a bracketed non-IPv6", "http://[10.0.0.17]:80/x", /not an IPv6 address/],
    ["an unclosed bracket", "http://[::1:80/x", /not host\[:port\]/],
    ["a space in the host", "http://10.0.0 .17/x", /not a host name or IP address/],
    ["a backslash in the host", "http://h\\x/y", /not a host name or IP address/],
    ["a scheme without //", "http:10.0.0.17/x", /no \/\/authority/],
    ["a relative path", "devices/d/x", /neither a path/],
  ];
  for (const [label, url, message] of malformed) {
    it(`refuses ${label} with 400 GW_BAD_DEVICE_ID, before any lookup`, async () => {
      const { address, registry } = setup();
      await refused(address(url), "GW_BAD_DEVICE_ID", 400, message);
      assert.deepEqual(registry.lookups, []);
    });
  }

  it("refuses a target over the length limit, before any lookup", async () => {
    const { address, registry } = setup();
    const url = `http://10.0.0.17:8080/${"a".repeat(MAX_TARGET_LENGTH)}`;
    const err = await refused(address(url), "GW_BAD_DEVICE_ID", 400, /at most 8192/);
    assert.ok(err.message.length < 200, "the message does not repeat the target");
    assert.deepEqual(registry.lookups, []);
    assert.equal(
      (await address(`http://10.0.0.17:8080/${"a".repeat(MAX_TARGET_LENGTH - 23)}`))?.deviceId,
      "dev-17",
      "exactly at the limit",
    );
  });

  it("quotes and shortens client input in its messages", async () => {
    const { address } = setup();
    const err = await refused(address(`http://${"h".repeat(500)}.lan/x`), "GW_NOT_A_DEVICE", 403);
    assert.ok(err.message.length < 250, `message is ${err.message.length} characters`);
  });

  it("passes a registry outage on (503 GW_STORE_UNAVAILABLE), not as 403", async () => {
    const { address, registry } = setup();
    registry.failure = new GatewayError("GW_STORE_UNAVAILABLE");
    await refused(address("http://10.0.0.17:8080/x"), "GW_STORE_UNAVAILABLE", 503);
  });
});

describe("CONNECT: 405, whatever the target", () => {
  for (const url of ["10.0.0.17:8080", "10.0.0.99:443", "/devices/dev-17/x", "http://10.0.0.17:8080/"]) {
    it(`CONNECT ${url}`, async () => {
      const { address, registry } = setup(SUFFIX);
      await refused(address(url, { host: `dev-17.${SUFFIX}` }, "CONNECT"), "GW_METHOD_NOT_ALLOWED", 405, /not an open proxy/);
      assert.deepEqual(registry.lookups, []);
    });
  }
});

describe("answerConnect: Node's CONNECT event answered over a real socket", () => {
  let server: Server;
  let port: number;
  const logged: Array<Record<string, unknown>> = [];
  let tunnelled = false;

  before(async () => {
    server = createServer((_req, res) => res.end("not for CONNECT"));
    server.on("connect", answerConnect({ info: (fields: Record<string, unknown>) => void logged.push(fields) }));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Sends `head` then bytes that would be a TLS hello; resolves with everything received until close. */
  function exchange(head: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => socket.write(`${head}\r\n\r\n\x16\x03\x01tunnel?`));
      let received = "";
      socket.setEncoding("latin1");
      socket.on("data", (d: string) => {
        received += d;
        if (received.includes("tunnel?")) tunnelled = true;
      });
      socket.on("error", reject);
      socket.on("close", () => resolve(received));
    });
  }

  it("answers 405 with the JSON error, Allow and X-Request-Id, then closes: no tunnel", async () => {
    const reply = await exchange("CONNECT 10.0.0.17:443 HTTP/1.1\r\nHost: 10.0.0.17:443\r\nX-Request-Id: connect-1");
    const [head = "", body = ""] = reply.split("\r\n\r\n");
    assert.match(head, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.match(head, new RegExp(`\r\nAllow: ${DEVICE_METHODS}\r\n`));
    assert.match(head, /\r\nX-Request-Id: connect-1\r\n/);
    assert.match(head, /\r\nConnection: close(\r\n|$)/);
    assert.match(head, new RegExp(`\r\nContent-Length: ${Buffer.byteLength(body)}(\r\n|$)`));
    const json = JSON.parse(body) as { error: { code: string; requestId: string } };
    assert.equal(json.error.code, "GW_METHOD_NOT_ALLOWED");
    assert.equal(json.error.requestId, "connect-1");
    assert.equal(tunnelled, false);
    assert.deepEqual(logged.at(-1), {
      requestId: "connect-1",
      method: "CONNECT",
      target: "10.0.0.17:443",
      status: 405,
      code: "GW_METHOD_NOT_ALLOWED",
    });
  });

  it("makes a request id when the client's is not a sane token", async () => {
    const reply = await exchange("CONNECT 10.0.0.17:443 HTTP/1.1\r\nHost: x\r\nX-Request-Id: bad id!");
    const id = /\r\nX-Request-Id: ([^\r]+)\r\n/.exec(reply)?.[1] ?? "";
    assert.match(id, /^[0-9a-f-]{36}$/);
  });
});

describe("DeviceAddressing: configuration", () => {
  it("refuses a host suffix that is not a DNS name", () => {
    for (const bad of ["", ".example.com", "exa mple.com", "example.com:80", "10.0.0.1", "a..b"]) {
      assert.throws(() => new DeviceAddressing({ hostSuffix: bad }, { registry: new FakeRegistry({}) }), /not a DNS name/, bad);
    }
  });

  it("answers the shape the device route needs", async () => {
    const { address } = setup(SUFFIX);
    const got: AddressedDevice | undefined = await address("/devices/d/x");
    assert.deepEqual(Object.keys(got ?? {}).sort(), ["deviceId", "mode", "resource"]);
  });
});
