/** The registry's configuration variables: DEFAULT_TRANSPORT, GATEWAY_DEVICE_MAX_IN_FLIGHT, GATEWAY_ADMIN_TOKEN, GATEWAY_DEVICES_FILE. */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { loadConfig } from "../../gateway/config.js";
import { expectConfigError } from "../helpers/thrown.js";

const SECRET = { XMPP_COMPONENT_SECRET: "s3cret" };

describe("registry configuration", () => {
  it("defaults: xmpp for unknown devices, 16 in flight, no admin API, no devices file", () => {
    const config = loadConfig(SECRET);
    assert.equal(config.devices.defaultTransport, "xmpp");
    assert.equal(config.devices.maxInFlight, 16);
    assert.equal(config.devices.file, undefined);
    assert.equal(config.admin.token, undefined);
  });

  it("DEFAULT_TRANSPORT takes xmpp or none only", () => {
    assert.equal(loadConfig({ ...SECRET, DEFAULT_TRANSPORT: "none" }).devices.defaultTransport, "none");
    for (const bad of ["http", "XMPP", "off"]) {
      const err = expectConfigError(() => loadConfig({ ...SECRET, DEFAULT_TRANSPORT: bad }));
      assert.equal(err.problems.length, 1);
      assert.match(err.problems[0] ?? "", /^DEFAULT_TRANSPORT=/);
    }
  });

  it("GATEWAY_DEVICE_MAX_IN_FLIGHT is 1..10000", () => {
    assert.equal(loadConfig({ ...SECRET, GATEWAY_DEVICE_MAX_IN_FLIGHT: "1" }).devices.maxInFlight, 1);
    assert.equal(loadConfig({ ...SECRET, GATEWAY_DEVICE_MAX_IN_FLIGHT: "10000" }).devices.maxInFlight, 10_000);
    for (const bad of ["0", "10001", "x", "2.5"]) {
      const err = expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_DEVICE_MAX_IN_FLIGHT: bad }));
      assert.match(err.problems[0] ?? "", /^GATEWAY_DEVICE_MAX_IN_FLIGHT=/);
    }
  });

  it("GATEWAY_ADMIN_TOKEN: 16-1024 visible ASCII characters; a bad one is reported without its value", () => {
    assert.equal(loadConfig({ ...SECRET, GATEWAY_ADMIN_TOKEN: "  0123456789abcdef  " }).admin.token, "0123456789abcdef");
    assert.equal(loadConfig({ ...SECRET, GATEWAY_ADMIN_TOKEN: "   " }).admin.token, undefined);
    for (const bad of ["short-secret", "0123456789 abcdef", "0123456789abcdé", "x".repeat(1025)]) {
      const err = expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_ADMIN_TOKEN: bad }));
      assert.equal(err.problems.length, 1);
      assert.match(err.problems[0] ?? "", /^GATEWAY_ADMIN_TOKEN /);
      assert.ok(!err.message.includes(bad), "the token must not be printed");
    }
  });

  it("GATEWAY_DEVICES_FILE is a path, read at start", () => {
    assert.equal(loadConfig({ ...SECRET, GATEWAY_DEVICES_FILE: " /etc/gw/devices.yaml " }).devices.file, "/etc/gw/devices.yaml");
  });
});
