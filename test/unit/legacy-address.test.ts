/**
 * A device's legacy address announced by its agent and recorded by the gateway: the presence element, the
 * JID template read backwards, the recorder's rules (which entries it may write, never stealing an
 * address), the tracker passing presence to it, and the agent's and gateway's new settings.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import { loadAgentConfig } from "../../adapters/device-agent/config.js";
import { announcedLegacyAddress, deviceAnnouncement, NS_DEVICE } from "../../lib/legacy-address.js";
import { el, serialize, type XmlElement } from "../../lib/xep0332/xml.js";
import { loadConfig } from "../../gateway/config.js";
import { GatewayError } from "../../gateway/errors.js";
import { LegacyAddressRecorder, type LegacyAddressDeps, type LegacyAddressOutcome } from "../../gateway/presence/legacy-address.js";
import { PresenceTracker } from "../../gateway/presence/tracker.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import { compileJidTemplate } from "../../gateway/registry/jid-template.js";
import { LegacyAddressConflict } from "../../gateway/registry/redis-registry.js";
import { normalizeLegacyAddress } from "../../gateway/registry/validate.js";
import { expectConfigError } from "../helpers/thrown.js";

describe("the <device/> presence element", () => {
  it("is the gateway's own namespace, with the address as an attribute", () => {
    assert.equal(NS_DEVICE, "urn:xmpp-http-gateway:device:0");
    assert.equal(
      serialize(deviceAnnouncement("10.0.0.17:8080")),
      `<device xmlns="urn:xmpp-http-gateway:device:0" legacyAddress="10.0.0.17:8080"/>`,
    );
  });

  it("is read from a presence, as sent", () => {
    assert.equal(announcedLegacyAddress(el("presence", {}, deviceAnnouncement("Meter.LAN:08080"))), "Meter.LAN:08080");
  });

  it("is ignored in another namespace, elsewhere, without the attribute, or absurdly long", () => {
    assert.equal(announcedLegacyAddress(el("presence", {})), undefined);
    assert.equal(announcedLegacyAddress(el("presence", {}, el("device", { xmlns: "urn:other", legacyAddress: "10.0.0.1:80" }))), undefined);
    assert.equal(announcedLegacyAddress(el("presence", {}, el("device", { legacyAddress: "10.0.0.1:80" }))), undefined);
    assert.equal(announcedLegacyAddress(el("presence", {}, el("x", {}, deviceAnnouncement("10.0.0.1:80")))), undefined);
    assert.equal(announcedLegacyAddress(el("presence", {}, el("device", { xmlns: NS_DEVICE }))), undefined);
    assert.equal(announcedLegacyAddress(el("presence", {}, deviceAnnouncement(`${"a".repeat(400)}:80`))), undefined);
  });

  it("normalizeLegacyAddress is the registry's, re-exported unchanged", () => {
    assert.equal(normalizeLegacyAddress("Meter-17.LAN:08080"), "meter-17.lan:8080");
    assert.equal(normalizeLegacyAddress("[0:0:0:0:0:0:0:1]:80"), "[::1]:80");
  });
});

describe("compileJidTemplate: DEVICE_JID_TEMPLATE read backwards", () => {
  const plain = compileJidTemplate("{id}@devices.example.com/agent");

  it("gives the device id of its template JID", () => {
    assert.equal(plain.deviceIdOf("dev-17@devices.example.com/agent"), "dev-17");
    assert.equal(plain.deviceIdOf("a.b_c-d@devices.example.com/agent"), "a.b_c-d");
    assert.equal(plain.jidFor("dev-17"), "dev-17@devices.example.com/agent");
  });

  it("compares local part and domain case-insensitively, the resource exactly; answers the canonical (lower-case) id", () => {
    assert.equal(plain.deviceIdOf("Dev-17@DEVICES.example.com/agent"), "dev-17", "the canonical id");
    assert.equal(plain.deviceIdOf("dev-17@devices.example.com/Agent"), undefined);
  });

  it("refuses JIDs that are no device's", () => {
    for (const jid of [
      "dev-17@devices.example.com",
      "dev-17@devices.example.com/agent2",
      "dev-17@devices.example.com/agent/x",
      "dev-17@other.example.com/agent",
      "dev-17@devices.example.com.evil/agent",
      "@devices.example.com/agent",
      "dev+17@devices.example.com/agent",
      `${"a".repeat(65)}@devices.example.com/agent`,
      "devices.example.com/agent",
      "",
    ]) {
      assert.equal(plain.deviceIdOf(jid), undefined, jid);
    }
  });

  it("reads templates with text around {id}, and {id} more than once", () => {
    const prefixed = compileJidTemplate("Meter-{id}.v1@localhost/agent");
    assert.equal(prefixed.deviceIdOf("meter-17.v1@localhost/agent"), "17");
    assert.equal(prefixed.deviceIdOf("17@localhost/agent"), undefined);
    const twice = compileJidTemplate("{id}-{id}@localhost/agent");
    assert.equal(twice.deviceIdOf("ab-ab@localhost/agent"), "ab");
    assert.equal(twice.deviceIdOf("ab-ac@localhost/agent"), undefined);
  });

  it("escapes regular expression characters in the template", () => {
    const dotted = compileJidTemplate("{id}@a.b/r+s");
    assert.equal(dotted.deviceIdOf("x@a.b/r+s"), "x");
    assert.equal(dotted.deviceIdOf("x@aXb/r+s"), undefined);
    assert.equal(dotted.deviceIdOf("x@a.b/rrs"), undefined);
  });

  it("reads nothing back from a template without {id} in its local part", () => {
    assert.equal(compileJidTemplate("fixed@localhost/{id}").deviceIdOf("fixed@localhost/x"), undefined);
  });
});

/** The registry's get and upsert, with its ownership rule: one device per legacy address. */
class FakeRegistry {
  readonly records = new Map<string, DeviceRecord>();
  readonly writes: DeviceRecord[] = [];
  failure: Error | undefined;

  constructor(records: DeviceRecord[] = []) {
    for (const r of records) this.records.set(r.id, r);
  }

  get(id: string): Promise<DeviceRecord | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    return Promise.resolve(this.records.get(id));
  }

  upsert(record: DeviceRecord): Promise<{ created: boolean; record: DeviceRecord }> {
    if (this.failure) return Promise.reject(this.failure);
    const owner = [...this.records.values()].find((r) => r.legacyAddress === record.legacyAddress && r.id !== record.id);
    if (record.legacyAddress !== undefined && owner) return Promise.reject(new LegacyAddressConflict(record.legacyAddress, owner.id));
    const created = !this.records.has(record.id);
    this.records.set(record.id, record);
    this.writes.push(record);
    return Promise.resolve({ created, record });
  }
}

function recorder(records: DeviceRecord[] = [], overrides: Partial<LegacyAddressDeps> = {}) {
  const registry = new FakeRegistry(records);
  const r = new LegacyAddressRecorder({ registry, jidTemplate: "{id}@localhost/agent", ...overrides });
  return { registry, record: (jid: string, address: string) => r.record(jid, address) };
}

describe("LegacyAddressRecorder", () => {
  it("fills in the address of an xmpp entry, keeping its other fields", async () => {
    const { registry, record } = recorder([
      { id: "dev-17", transport: "xmpp", acceptAnnouncedAddress: true, timeoutMs: 5000, maxInFlight: 2, updatedAt: "x" },
    ]);
    assert.deepEqual(await record("dev-17@localhost/agent", "10.0.0.17:8080"), {
      result: "recorded",
      jid: "dev-17@localhost/agent",
      legacyAddress: "10.0.0.17:8080",
      deviceId: "dev-17",
    });
    assert.deepEqual(registry.records.get("dev-17"), {
      id: "dev-17",
      transport: "xmpp",
      acceptAnnouncedAddress: true,
      timeoutMs: 5000,
      maxInFlight: 2,
      updatedAt: "x",
      legacyAddress: "10.0.0.17:8080",
    });
  });

  it("stores the address normalized", async () => {
    const { registry, record } = recorder([{ id: "m", transport: "xmpp", acceptAnnouncedAddress: true }]);
    assert.equal((await record("m@localhost/agent", "Meter.LAN:08080")).legacyAddress, "meter.lan:8080");
    assert.equal(registry.records.get("m")?.legacyAddress, "meter.lan:8080");
  });

  it("writes only when the address changes", async () => {
    const { registry, record } = recorder([{ id: "d", transport: "xmpp", legacyAddress: "10.0.0.1:80", acceptAnnouncedAddress: true }]);
    assert.equal((await record("d@localhost/agent", "10.0.0.1:80")).result, "unchanged");
    assert.equal((await record("d@localhost/agent", "10.0.0.1:0080")).result, "unchanged");
    assert.equal(registry.writes.length, 0);
    assert.equal((await record("d@localhost/agent", "10.0.0.2:80")).result, "recorded", "a device that moved");
    assert.equal(registry.writes.length, 1);
  });

  it("never takes an address another device owns", async () => {
    const { registry, record } = recorder([
      { id: "owner", transport: "xmpp", legacyAddress: "10.0.0.17:8080" },
      { id: "thief", transport: "xmpp", acceptAnnouncedAddress: true },
    ]);
    assert.deepEqual(await record("thief@localhost/agent", "10.0.0.17:8080"), {
      result: "conflict",
      jid: "thief@localhost/agent",
      legacyAddress: "10.0.0.17:8080",
      deviceId: "thief",
      reason: "owned by device owner",
    });
    assert.equal((await record("newcomer@localhost/agent", "10.0.0.17:8080")).result, "ignored", "no entry: nothing to record");
    assert.equal(registry.records.get("thief")?.legacyAddress, undefined);
    assert.equal(registry.records.has("newcomer"), false);
    assert.equal(registry.writes.length, 0);
  });

  it("creates no entry for a device without one: an agent cannot register itself", async () => {
    const { registry, record } = recorder();
    const outcome = await record("dev-9@localhost/agent", "10.0.0.9:80");
    assert.equal(outcome.result, "ignored");
    assert.match(outcome.reason ?? "", /no registry entry/);
    assert.equal(registry.writes.length, 0);
  });

  it("takes no address for an entry without acceptAnnouncedAddress: the operator's is the only one", async () => {
    const { registry, record } = recorder([
      { id: "set", transport: "xmpp", legacyAddress: "10.0.0.1:80" },
      { id: "unset", transport: "xmpp" },
    ]);
    assert.equal((await record("set@localhost/agent", "10.0.0.1:80")).result, "unchanged", "announcing the registered address is fine");
    const moved = await record("set@localhost/agent", "10.0.0.2:80");
    assert.equal(moved.result, "ignored");
    assert.match(moved.reason ?? "", /acceptAnnouncedAddress.*10\.0\.0\.1:80/);
    const claimed = await record("unset@localhost/agent", "10.0.0.3:80");
    assert.equal(claimed.result, "ignored");
    assert.match(claimed.reason ?? "", /acceptAnnouncedAddress.*unset/);
    assert.equal(registry.writes.length, 0);
    assert.equal(registry.records.get("set")?.legacyAddress, "10.0.0.1:80");
  });

  it("leaves http entries alone: the agent is not how they are reached", async () => {
    const { registry, record } = recorder([{ id: "h", transport: "http", httpTarget: "http://10.0.0.5:80", legacyAddress: "10.0.0.5:80" }]);
    const outcome = await record("h@localhost/agent", "10.0.0.6:80");
    assert.equal(outcome.result, "ignored");
    assert.match(outcome.reason ?? "", /transport is http/);
    assert.equal(registry.records.get("h")?.legacyAddress, "10.0.0.5:80");
  });

  it("takes an entry's explicit jid only when it is the announcing JID", async () => {
    const { registry, record } = recorder([
      { id: "same", transport: "xmpp", jid: "SAME@localhost/agent", acceptAnnouncedAddress: true },
      { id: "elsewhere", transport: "xmpp", jid: "meter-1@other.example.com/bulb", acceptAnnouncedAddress: true },
    ]);
    assert.equal((await record("same@localhost/agent", "10.0.0.1:80")).result, "recorded");
    const outcome = await record("elsewhere@localhost/agent", "10.0.0.2:80");
    assert.equal(outcome.result, "ignored", "the template JID does not speak for a device that lives at another JID");
    assert.match(outcome.reason ?? "", /meter-1@other\.example\.com\/bulb/);
    assert.equal(registry.records.get("elsewhere")?.legacyAddress, undefined);
  });

  it("ignores JIDs that are not the template's (explicit-jid devices are set through the admin API)", async () => {
    const { registry, record } = recorder([{ id: "meter-1", transport: "xmpp", jid: "meter-1@other.example.com/bulb" }]);
    for (const jid of ["meter-1@other.example.com/bulb", "dev@localhost/other", "dev+x@localhost/agent"]) {
      const outcome = await record(jid, "10.0.0.1:80");
      assert.equal(outcome.result, "ignored", jid);
      assert.match(outcome.reason ?? "", /DEVICE_JID_TEMPLATE/);
    }
    assert.equal(registry.writes.length, 0);
  });

  it("ignores an address that is not host:port", async () => {
    const { registry, record } = recorder([{ id: "d", transport: "xmpp" }]);
    for (const bad of ["10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", "::1:80", "my_host:80", "http://10.0.0.1:80", ""]) {
      const outcome = await record("d@localhost/agent", bad);
      assert.equal(outcome.result, "ignored", bad);
      assert.equal(outcome.legacyAddress, bad);
    }
    assert.equal(registry.writes.length, 0);
  });

  it("reports a registry outage as failed, never throws", async () => {
    const { registry, record } = recorder([{ id: "d", transport: "xmpp" }]);
    registry.failure = new GatewayError("GW_STORE_UNAVAILABLE");
    assert.deepEqual(await record("d@localhost/agent", "10.0.0.1:80"), {
      result: "failed",
      jid: "d@localhost/agent",
      legacyAddress: "10.0.0.1:80",
      deviceId: "d",
      reason: "GW_STORE_UNAVAILABLE",
    });
  });

  it("records under the id as the server spells the JID (lower-case local part)", async () => {
    const { registry, record } = recorder([{ id: "dev-17", transport: "xmpp", acceptAnnouncedAddress: true }]);
    assert.equal((await record("dev-17@localhost/agent", "10.0.0.17:80")).deviceId, "dev-17");
    assert.equal(registry.records.get("dev-17")?.legacyAddress, "10.0.0.17:80");
  });
});

describe("PresenceTracker: announced addresses go to the recorder", () => {
  const silent = pino({ level: "silent" });

  function tracker(deps?: LegacyAddressDeps) {
    const presence: string[] = [];
    const store = {
      available: (jid: string) => {
        presence.push(`+${jid}`);
        return Promise.resolve();
      },
      unavailable: (jid: string) => {
        presence.push(`-${jid}`);
        return Promise.resolve();
      },
    };
    const t = new PresenceTracker(store, silent, deps);
    const outcomes: LegacyAddressOutcome[] = [];
    const next = () => new Promise<LegacyAddressOutcome>((resolve) => t.onLegacyAddress(resolve));
    t.onLegacyAddress((o) => outcomes.push(o));
    return { t, presence, outcomes, next };
  }

  const presenceWith = (from: string, address: string, attrs: Record<string, string> = {}): XmlElement =>
    el("presence", { from, to: "gateway.localhost", ...attrs }, deviceAnnouncement(address));

  it("records the address of an available presence, and still stores the presence", async () => {
    const registry = new FakeRegistry([{ id: "d", transport: "xmpp", acceptAnnouncedAddress: true }]);
    const { t, presence, next } = tracker({ registry, jidTemplate: "{id}@localhost/agent" });
    const outcome = next();
    t.handle(presenceWith("d@localhost/agent", "10.0.0.1:80"));
    assert.equal((await outcome).result, "recorded");
    assert.deepEqual(presence, ["+d@localhost/agent"]);
    assert.equal(registry.records.get("d")?.legacyAddress, "10.0.0.1:80");
  });

  it("does not look at unavailable presence, bare JIDs or other stanzas", async () => {
    const registry = new FakeRegistry([{ id: "d", transport: "xmpp" }]);
    const { t, outcomes } = tracker({ registry, jidTemplate: "{id}@localhost/agent" });
    t.handle(presenceWith("d@localhost/agent", "10.0.0.1:80", { type: "unavailable" }));
    t.handle(presenceWith("d@localhost", "10.0.0.1:80"));
    t.handle(presenceWith("d@localhost/agent", "10.0.0.1:80", { type: "subscribe" }));
    t.handle(el("message", { from: "d@localhost/agent" }, deviceAnnouncement("10.0.0.1:80")));
    // Then one that is looked at: outcomes are reported in order, so none came before it.
    const last = new Promise<LegacyAddressOutcome>((resolve) => t.onLegacyAddress(resolve));
    t.handle(presenceWith("d@localhost/agent", "10.0.0.2:80"));
    assert.equal((await last).legacyAddress, "10.0.0.2:80");
    assert.deepEqual(
      outcomes.map((o) => o.legacyAddress),
      ["10.0.0.2:80"],
    );
  });

  it("ignores announcements when it has no registry (the composition root did not give it one)", () => {
    const { t, presence, outcomes } = tracker();
    t.handle(presenceWith("d@localhost/agent", "10.0.0.1:80"));
    t.handle(el("presence", { from: "e@localhost/agent" }));
    // Without a recorder nothing is scheduled at all: there is nothing to wait for.
    assert.deepEqual(presence, ["+d@localhost/agent", "+e@localhost/agent"]);
    assert.deepEqual(outcomes, []);
  });
});

describe("configuration: GATEWAY_DEVICE_HOST_SUFFIX and AGENT_LEGACY_ADDRESS", () => {
  const SECRET = { XMPP_COMPONENT_SECRET: "s3cret" };
  const IDENTITY = { AGENT_USERNAME: "dev-17", AGENT_PASSWORD: "pw17" };
  const dir = mkdtempSync(join(tmpdir(), "legacy-address-"));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const fleetFile = (entries: unknown) => {
    const file = join(dir, `fleet-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(entries));
    return file;
  };

  it("gateway: no suffix by default (no Host addressing)", () => {
    assert.equal("deviceHostSuffix" in loadConfig(SECRET).http, false);
  });

  it("gateway: a suffix is read lower-cased", () => {
    assert.equal(
      loadConfig({ ...SECRET, GATEWAY_DEVICE_HOST_SUFFIX: " Devices.Example.COM " }).http.deviceHostSuffix,
      "devices.example.com",
    );
    assert.equal(loadConfig({ ...SECRET, GATEWAY_DEVICE_HOST_SUFFIX: "localhost" }).http.deviceHostSuffix, "localhost");
  });

  for (const bad of [
    ".devices.example.com",
    "devices.example.com.",
    "devices.example.com:8080",
    "*.example.com",
    "10.0.0.1",
    "exa_mple.com",
    "a..b",
  ]) {
    it(`gateway: refuses the suffix ${JSON.stringify(bad)}, naming the variable`, () => {
      const err = expectConfigError(() => loadConfig({ ...SECRET, GATEWAY_DEVICE_HOST_SUFFIX: bad }));
      assert.equal(err.problems.length, 1);
      assert.match(err.problems[0] ?? "", /^GATEWAY_DEVICE_HOST_SUFFIX=.* must be a DNS name/);
    });
  }

  it("agent: no legacy address by default", () => {
    assert.equal("legacyAddress" in (loadAgentConfig(IDENTITY).agents[0] ?? {}), false);
  });

  it("agent: AGENT_LEGACY_ADDRESS is read normalized", () => {
    assert.equal(loadAgentConfig({ ...IDENTITY, AGENT_LEGACY_ADDRESS: "10.0.0.17:8080" }).agents[0]?.legacyAddress, "10.0.0.17:8080");
    assert.equal(loadAgentConfig({ ...IDENTITY, AGENT_LEGACY_ADDRESS: "Meter.LAN:08080" }).agents[0]?.legacyAddress, "meter.lan:8080");
    assert.equal(loadAgentConfig({ ...IDENTITY, AGENT_LEGACY_ADDRESS: "[0::1]:80" }).agents[0]?.legacyAddress, "[::1]:80");
  });

  for (const bad of ["10.0.0.17", "10.0.0.17:0", "10.0.0.17:65536", "::1:80", "http://10.0.0.17:8080", "my_host:80"]) {
    it(`agent: refuses AGENT_LEGACY_ADDRESS=${JSON.stringify(bad)}`, () => {
      const err = expectConfigError(() => loadAgentConfig({ ...IDENTITY, AGENT_LEGACY_ADDRESS: bad }));
      assert.equal(err.problems.length, 1);
      assert.match(err.problems[0] ?? "", /^AGENT_LEGACY_ADDRESS=.* must be host:port/);
    });
  }

  it("agent: fleet entries carry their own legacyAddress, normalized", () => {
    const file = fleetFile([
      { username: "a", password: "p", localUrl: "http://127.0.0.1:1", legacyAddress: "10.0.0.1:8080" },
      { username: "b", password: "p", localUrl: "http://127.0.0.1:2" },
      { username: "c", password: "p", localUrl: "http://127.0.0.1:3", legacyAddress: "Meter.LAN:80" },
    ]);
    const agents = loadAgentConfig({ AGENT_FLEET_FILE: file }).agents;
    assert.deepEqual(
      agents.map((a) => a.legacyAddress),
      ["10.0.0.1:8080", undefined, "meter.lan:80"],
    );
    assert.equal("legacyAddress" in (agents[1] ?? {}), false);
  });

  it("agent: refuses bad and duplicate fleet addresses, naming the entry", () => {
    const file = fleetFile([
      { username: "a", password: "p", localUrl: "http://127.0.0.1:1", legacyAddress: "10.0.0.1:8080" },
      { username: "b", password: "p", localUrl: "http://127.0.0.1:2", legacyAddress: "10.0.0.1:08080" },
      { username: "c", password: "p", localUrl: "http://127.0.0.1:3", legacyAddress: 8080 },
      { username: "d", password: "p", localUrl: "http://127.0.0.1:4", legacyAddress: "nope" },
    ]);
    const err = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: file }));
    assert.deepEqual(err.problems, [
      'AGENT_FLEET_FILE entry 1: "legacyAddress" 10.0.0.1:8080 is also entry 0\'s',
      'AGENT_FLEET_FILE entry 2: "legacyAddress" 8080 must be host:port (IPv4, [IPv6] or a host name; port 1-65535), e.g. 10.0.0.17:8080',
      'AGENT_FLEET_FILE entry 3: "legacyAddress" "nope" must be host:port (IPv4, [IPv6] or a host name; port 1-65535), e.g. 10.0.0.17:8080',
    ]);
  });

  it("agent: refuses AGENT_LEGACY_ADDRESS together with a fleet file", () => {
    const file = fleetFile([{ username: "a", password: "p", localUrl: "http://127.0.0.1:1" }]);
    const err = expectConfigError(() => loadAgentConfig({ AGENT_FLEET_FILE: file, AGENT_LEGACY_ADDRESS: "10.0.0.1:80" }));
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0] ?? "", /^AGENT_LEGACY_ADDRESS is for a single identity/);
  });
});
