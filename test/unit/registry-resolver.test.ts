/**
 * RegistryResolver: the registry entry with defaults filled in, else the default rule (DEVICE_JID_TEMPLATE
 * or, with DEFAULT_TRANSPORT=none, 404 GW_UNKNOWN_DEVICE); and RedisDeviceRegistry's Redis failures.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { GatewayError } from "../../gateway/errors.js";
import { createLogger } from "../../gateway/log.js";
import { RedisStore } from "../../gateway/redis/client.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import { RedisDeviceRegistry } from "../../gateway/registry/redis-registry.js";
import { RegistryResolver, type ResolverDefaults } from "../../gateway/registry/resolver.js";

const DEFAULTS: ResolverDefaults = {
  defaultTransport: "xmpp",
  jidTemplate: "{id}@devices.example.com/agent",
  timeoutMs: 30_000,
  maxInFlight: 16,
};

function resolverWith(records: DeviceRecord[], defaults: Partial<ResolverDefaults> = {}): RegistryResolver {
  const byId = new Map(records.map((r) => [r.id, r]));
  return new RegistryResolver({ get: (id) => Promise.resolve(byId.get(id)) }, { ...DEFAULTS, ...defaults });
}

describe("RegistryResolver", () => {
  it("fills an entry's absent fields from the defaults, the JID from the template", async () => {
    const route = await resolverWith([{ id: "dev-1", transport: "xmpp" }]).resolve("dev-1");
    assert.deepEqual(route, {
      deviceId: "dev-1",
      transport: "xmpp",
      jid: "dev-1@devices.example.com/agent",
      timeoutMs: 30_000,
      maxInFlight: 16,
    });
  });

  it("takes the entry's own jid, timeoutMs and maxInFlight", async () => {
    const route = await resolverWith([
      { id: "dev-1", transport: "xmpp", jid: "meter@other.example/x", timeoutMs: 500, maxInFlight: 2 },
    ]).resolve("dev-1");
    assert.deepEqual(route, { deviceId: "dev-1", transport: "xmpp", jid: "meter@other.example/x", timeoutMs: 500, maxInFlight: 2 });
  });

  it("answers an http entry with its transport and httpTarget", async () => {
    const route = await resolverWith([{ id: "old", transport: "http", httpTarget: "http://10.0.0.17:8080" }]).resolve("old");
    assert.equal(route.transport, "http");
    assert.equal(route.httpTarget, "http://10.0.0.17:8080");
    assert.equal(route.jid, "old@devices.example.com/agent");
  });

  it("uses an entry even when DEFAULT_TRANSPORT is none", async () => {
    const route = await resolverWith([{ id: "dev-1", transport: "xmpp" }], { defaultTransport: "none" }).resolve("dev-1");
    assert.equal(route.transport, "xmpp");
  });

  it("without an entry: the template when DEFAULT_TRANSPORT is xmpp", async () => {
    const route = await resolverWith([]).resolve("dev-2");
    assert.deepEqual(route, {
      deviceId: "dev-2",
      transport: "xmpp",
      jid: "dev-2@devices.example.com/agent",
      timeoutMs: 30_000,
      maxInFlight: 16,
    });
  });

  it("without an entry: 404 GW_UNKNOWN_DEVICE when DEFAULT_TRANSPORT is none", async () => {
    await assert.rejects(resolverWith([], { defaultTransport: "none" }).resolve("dev-2"), (err: unknown) => {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, "GW_UNKNOWN_DEVICE");
      assert.equal(err.status, 404);
      return true;
    });
  });

  it("passes a registry failure on", async () => {
    const failing = new RegistryResolver({ get: async () => Promise.reject(new GatewayError("GW_STORE_UNAVAILABLE")) }, DEFAULTS);
    await assert.rejects(failing.resolve("x"), (err: unknown) => err instanceof GatewayError && err.code === "GW_STORE_UNAVAILABLE");
  });
});

describe("RedisDeviceRegistry without Redis", () => {
  it("fails every operation with GW_STORE_UNAVAILABLE", async () => {
    // Never started: with the offline queue off, every command fails at once.
    const redis = new RedisStore(
      { url: "redis://127.0.0.1:1", keyPrefix: "t:", commandTimeoutMs: 100 },
      { logger: createLogger("silent") },
    );
    const registry = new RedisDeviceRegistry(redis);
    const unavailable = (err: unknown) => err instanceof GatewayError && err.code === "GW_STORE_UNAVAILABLE" && err.status === 503;
    await assert.rejects(registry.get("d"), unavailable);
    await assert.rejects(registry.put({ id: "d", transport: "xmpp" }), unavailable);
    await assert.rejects(registry.upsert({ id: "d", transport: "xmpp", legacyAddress: "10.0.0.1:80" }), unavailable);
    await assert.rejects(registry.delete("d"), unavailable);
    await assert.rejects(registry.list(), unavailable);
    await assert.rejects(registry.findByLegacyAddress("10.0.0.1:80"), unavailable);
    await redis.stop();
  });

  it("answers nothing for a legacy address that cannot be one, without asking Redis", async () => {
    const redis = new RedisStore(
      { url: "redis://127.0.0.1:1", keyPrefix: "t:", commandTimeoutMs: 100 },
      { logger: createLogger("silent") },
    );
    assert.equal(await new RedisDeviceRegistry(redis).findByLegacyAddress("not an address"), undefined);
    await redis.stop();
  });
});
