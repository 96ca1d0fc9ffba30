// The device registry's admin API against real Redis and Prosody: two gateway instances sharing one Redis
// key space see each other's changes at once; a third, with DEFAULT_TRANSPORT=none and no admin token,
// serves registered devices only and has no admin API.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import request from "supertest";
import { ConfigError } from "../../lib/env.js";
import { createGateway } from "../../gateway/compose.js";
import { loadConfig } from "../../gateway/config.js";
import { createLogger } from "../../gateway/log.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import { RegistryResolver } from "../../gateway/registry/resolver.js";
import { listAll } from "../helpers/admin-listing.js";
import { echoDevice, type EchoReport } from "../helpers/echo-device.js";
import { startFleet } from "../helpers/fleet.js";
import { gatewayEnv, registryChangeSeen, startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack, testComponents } from "../helpers/stack.js";

const TOKEN = `admin-${randomBytes(16).toString("hex")}`;
const AUTH = `Bearer ${TOKEN}`;
const PREFIX = `t-admin-${randomBytes(4).toString("hex")}:`;
const COMPONENTS = testComponents(3);

const IMPORTED_JSON = [
  { id: "imported-json-1", transport: "xmpp", legacyAddress: "10.9.9.1:80", timeoutMs: 4000 },
  { id: "imported-json-2", transport: "http", httpTarget: "http://10.9.9.2:8080" },
];
const IMPORTED_YAML = `
- id: imported-yaml-1
  transport: xmpp
  jid: meter-1@localhost/agent
  maxInFlight: 3
`;

/** A single-device answer without its `online` (true, false, or null when presence is unknown). */
function withoutOnline(body: Record<string, unknown>): Record<string, unknown> {
  const { online, ...record } = body;
  assert.ok(online === null || typeof online === "boolean", `online is ${JSON.stringify(online)}`);
  return record;
}

interface ErrorJson {
  error: { code: string; message: string; field?: string; requestId: string };
}

describe("admin API: the device registry shared by every instance", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let a: RunningGateway;
  let b: RunningGateway;
  /** DEFAULT_TRANSPORT=none, no admin token, the component the simulated devices trust. */
  let c: RunningGateway;
  let dir: string;

  const admin = (gw: RunningGateway) => ({
    get: (path: string) => request(gw.url).get(path).set("Authorization", AUTH),
    put: (path: string, body?: unknown) =>
      request(gw.url)
        .put(path)
        .set("Authorization", AUTH)
        .send(body as object),
    patch: (path: string, body?: unknown) =>
      request(gw.url)
        .patch(path)
        .set("Authorization", AUTH)
        .send(body as object),
    delete: (path: string) => request(gw.url).delete(path).set("Authorization", AUTH),
  });

  /** Sends raw text as the body (supertest would JSON-encode a string). */
  const putRaw = (gw: RunningGateway, path: string, text: string) =>
    request(gw.url).put(path).set("Authorization", AUTH).set("Content-Type", "application/json").send(text);

  before(async () => {
    stack = teardown.stopLater("stack", await startStack({ prosody: { components: COMPONENTS } }));
    dir = await mkdtemp(join(tmpdir(), "gw-admin-"));
    teardown.add("temp dir", () => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "devices.json"), JSON.stringify(IMPORTED_JSON));
    await writeFile(join(dir, "devices.yaml"), IMPORTED_YAML);
    a = teardown.stopLater(
      "gateway A",
      await startGateway(stack, { REDIS_KEY_PREFIX: PREFIX, GATEWAY_ADMIN_TOKEN: TOKEN, GATEWAY_DEVICES_FILE: join(dir, "devices.json") }),
    );
    b = teardown.stopLater(
      "gateway B",
      await startGateway(stack, {
        REDIS_KEY_PREFIX: PREFIX,
        GATEWAY_ADMIN_TOKEN: TOKEN,
        XMPP_COMPONENT_DOMAIN: "gw2.localhost",
        XMPP_COMPONENT_SECRET: "s2",
      }),
    );
    c = teardown.stopLater(
      "gateway C",
      await startGateway(stack, {
        REDIS_KEY_PREFIX: PREFIX,
        DEFAULT_TRANSPORT: "none",
        XMPP_COMPONENT_DOMAIN: "gw3.localhost",
        XMPP_COMPONENT_SECRET: "s3",
        GATEWAY_DEVICES_FILE: join(dir, "devices.yaml"),
      }),
    );
    teardown.stopLater(
      "fleet",
      await startFleet(stack.prosody, ["reg-dev", "unreg-dev"], (id) => echoDevice(id), { gatewayJid: "gw3.localhost" }),
    );
  });
  after(() => teardown.run());

  it("lists what the devices files imported at start (JSON on A, YAML on C)", async () => {
    const res = await admin(b).get("/admin/devices").expect(200);
    assert.match(res.headers["content-type"] as string, /^application\/json/);
    const byId = new Map((await listAll(b.url, TOKEN)).map((r) => [r.id, r]));
    for (const expected of [
      ...IMPORTED_JSON,
      { id: "imported-yaml-1", transport: "xmpp", jid: "meter-1@localhost/agent", maxInFlight: 3 },
    ]) {
      const got = byId.get(expected.id);
      assert.ok(got, `${expected.id} missing from ${res.text}`);
      const { updatedAt, ...rest } = got;
      assert.deepEqual(rest, expected);
      assert.ok(!Number.isNaN(Date.parse(updatedAt ?? "")), `updatedAt ${updatedAt}`);
    }
    // The legacy address of an imported entry is indexed too.
    assert.equal((await a.gateway.registry.findByLegacyAddress("10.9.9.1:80"))?.id, "imported-json-1");
  });

  it("a PUT on A is seen by a GET on B at once; a second PUT replaces (200)", async () => {
    const body = { transport: "xmpp", jid: "dev-put@localhost/agent", timeoutMs: 5000 };
    const created = await admin(a).put("/admin/devices/dev-put", body).expect(201);
    assert.equal(created.headers.location, "/admin/devices/dev-put");
    const stored = created.body as DeviceRecord;
    assert.equal(stored.id, "dev-put");
    assert.equal(stored.jid, "dev-put@localhost/agent");
    assert.ok(stored.updatedAt);

    const seen = await admin(b).get("/admin/devices/dev-put").expect(200);
    assert.deepEqual(withoutOnline(seen.body as Record<string, unknown>), stored);

    const replaced = await admin(b)
      .put("/admin/devices/dev-put", { id: "dev-put", transport: "http", httpTarget: "http://10.0.0.5:80" })
      .expect(200);
    assert.equal(replaced.headers.location, undefined);
    assert.deepEqual(Object.keys(replaced.body as object).sort(), ["httpTarget", "id", "transport", "updatedAt"]);
    const again = await admin(a).get("/admin/devices/dev-put").expect(200);
    const againBody = again.body as DeviceRecord;
    assert.equal(againBody.transport, "http");
    assert.equal(againBody.jid, undefined, "a PUT replaces the whole entry");
  });

  it("PATCH merges into the entry on the other instance; null removes an optional field", async () => {
    await admin(a).put("/admin/devices/dev-patch", { transport: "xmpp", jid: "p@localhost/agent", maxInFlight: 4 }).expect(201);
    const patched = await admin(b).patch("/admin/devices/dev-patch", { timeoutMs: 1234, maxInFlight: null }).expect(200);
    const patchedBody = patched.body as DeviceRecord;
    assert.equal(patchedBody.jid, "p@localhost/agent");
    assert.equal(patchedBody.timeoutMs, 1234);
    assert.equal("maxInFlight" in patchedBody, false);
    const seen = await admin(a).get("/admin/devices/dev-patch").expect(200);
    assert.deepEqual(withoutOnline(seen.body as Record<string, unknown>), patchedBody);

    // Validated as a whole after merging: http needs an httpTarget.
    const bad = await admin(a).patch("/admin/devices/dev-patch", { transport: "http" }).expect(400);
    assert.equal((bad.body as ErrorJson).error.field, "httpTarget");
    await admin(a).patch("/admin/devices/dev-patch", { transport: "http", httpTarget: "http://10.1.1.1:80" }).expect(200);
    // Removing the required transport is refused.
    const noTransport = await admin(a).patch("/admin/devices/dev-patch", { transport: null }).expect(400);
    assert.equal((noTransport.body as ErrorJson).error.field, "transport");
    // An id repeated in the body is fine; another one is not.
    await admin(a).patch("/admin/devices/dev-patch", { id: "dev-patch" }).expect(200);
    const other = await admin(a).patch("/admin/devices/dev-patch", { id: "someone" }).expect(400);
    assert.equal((other.body as ErrorJson).error.field, "id");

    const missing = await admin(b).patch("/admin/devices/never-was", { timeoutMs: 5 }).expect(404);
    assert.equal((missing.body as ErrorJson).error.code, "GW_UNKNOWN_DEVICE");
  });

  it("DELETE answers 204, then 404; the entry is gone on both instances", async () => {
    await admin(a).put("/admin/devices/dev-del", { transport: "xmpp" }).expect(201);
    const res = await admin(b).delete("/admin/devices/dev-del").expect(204);
    assert.equal(res.text, "");
    for (const gw of [a, b]) {
      const gone = await admin(gw).get("/admin/devices/dev-del").expect(404);
      assert.equal((gone.body as ErrorJson).error.code, "GW_UNKNOWN_DEVICE");
    }
    const again = await admin(a).delete("/admin/devices/dev-del").expect(404);
    assert.equal((again.body as ErrorJson).error.code, "GW_UNKNOWN_DEVICE");
    assert.ok(!(await listAll(a.url, TOKEN)).some((r) => r.id === "dev-del"));
  });

  it("lists entries ordered by id (code point order), ids in their canonical lower case", async () => {
    const ids = ["ord-b", "ord-a", "ord-Z", "ord-a.1", "ord-_", "ord-0"];
    for (const id of ids) await admin(a).put(`/admin/devices/${id}`, { transport: "xmpp" }).expect(201);
    const listed = (await listAll(b.url, TOKEN, { limit: "2" })).map((r) => r.id);
    assert.deepEqual(
      listed.filter((id) => id.startsWith("ord-")),
      ["ord-0", "ord-_", "ord-a", "ord-a.1", "ord-b", "ord-z"],
    );
    assert.deepEqual(listed, [...listed].sort(), "the whole list is sorted");
  });

  it("skips an id whose value vanished (ids and values read at different moments)", async () => {
    const { client, keys } = a.gateway.redis;
    await client.sadd(keys.devices(), "ghost");
    await client.zadd(keys.deviceIds(), 0, "ghost");
    const listed = await listAll(a.url, TOKEN);
    assert.ok(!listed.some((r) => r.id === "ghost"));
  });

  describe("authentication", () => {
    it("without a token configured (C), every /admin path is 404 GW_NOT_FOUND, with or without credentials", async () => {
      for (const [method, path] of [
        ["get", "/admin"],
        ["get", "/admin/"],
        ["get", "/admin/devices"],
        ["get", "/admin/devices/imported-json-1"],
        ["put", "/admin/devices/x"],
        ["patch", "/admin/devices/x"],
        ["delete", "/admin/devices/imported-json-1"],
        ["post", "/admin/devices"],
      ] as const) {
        for (const auth of [undefined, AUTH]) {
          let req = request(c.url)[method](path);
          if (auth) req = req.set("Authorization", auth);
          const res = await req.send({ transport: "xmpp" });
          assert.equal(res.status, 404, `${method} ${path}`);
          assert.equal((res.body as ErrorJson).error.code, "GW_NOT_FOUND", `${method} ${path}`);
        }
      }
      // Nothing was deleted through C.
      await admin(a).get("/admin/devices/imported-json-1").expect(200);
    });

    it("a missing or wrong token is 401 GW_UNAUTHORIZED with WWW-Authenticate: Bearer", async () => {
      const wrong = [
        undefined,
        `Bearer ${TOKEN}x`,
        `Bearer ${TOKEN.slice(0, -1)}`,
        `Bearer ${TOKEN.slice(0, -1)}${TOKEN.endsWith("0") ? "1" : "0"}`,
        "Bearer ",
        "Bearer",
        `Basic ${Buffer.from(`admin:${TOKEN}`).toString("base64")}`,
        TOKEN,
        `Bearer ${TOKEN} extra`,
      ];
      for (const auth of wrong) {
        for (const req of [
          request(a.url).get("/admin/devices"),
          request(a.url).put("/admin/devices/sneaky").send({ transport: "xmpp" }),
          request(a.url).delete("/admin/devices/imported-json-2"),
        ]) {
          const res = await (auth === undefined ? req : req.set("Authorization", auth));
          assert.equal(res.status, 401, String(auth));
          assert.equal((res.body as ErrorJson).error.code, "GW_UNAUTHORIZED");
          assert.equal(res.headers["www-authenticate"], "Bearer");
        }
      }
      await admin(a).get("/admin/devices/sneaky").expect(404);
      await admin(a).get("/admin/devices/imported-json-2").expect(200);
    });

    it("the right token works on both instances, whatever the case of the scheme", async () => {
      await request(a.url).get("/admin/devices").set("Authorization", AUTH).expect(200);
      await request(b.url).get("/admin/devices").set("Authorization", `bearer ${TOKEN}`).expect(200);
      await request(b.url).get("/admin/devices").set("Authorization", `BEARER  ${TOKEN}`).expect(200);
    });
  });

  describe("validation: 400 GW_INVALID_FIELD naming the field", () => {
    const cases: Array<[label: string, path: string, body: unknown, field: string]> = [
      ["an array body", "/admin/devices/v1", [{ transport: "xmpp" }], "body"],
      ["an unknown field", "/admin/devices/v1", { transport: "xmpp", colour: "red" }, "colour"],
      ["another id in the body", "/admin/devices/v1", { id: "v2", transport: "xmpp" }, "id"],
      ["a bad id in the path", "/admin/devices/bad%20id", { transport: "xmpp" }, "id"],
      ["an id of 65 characters in the path", `/admin/devices/${"x".repeat(65)}`, { transport: "xmpp" }, "id"],
      ["no transport", "/admin/devices/v1", {}, "transport"],
      ["an unknown transport", "/admin/devices/v1", { transport: "smtp" }, "transport"],
      ["a bare JID", "/admin/devices/v1", { transport: "xmpp", jid: "dev@localhost" }, "jid"],
      ["a JID with a space", "/admin/devices/v1", { transport: "xmpp", jid: "de v@localhost/agent" }, "jid"],
      ["a JID over 3071 bytes", "/admin/devices/v1", { transport: "xmpp", jid: `d@localhost/${"r".repeat(3100)}` }, "jid"],
      ["http without httpTarget", "/admin/devices/v1", { transport: "http" }, "httpTarget"],
      ["an ftp httpTarget", "/admin/devices/v1", { transport: "http", httpTarget: "ftp://10.0.0.1/" }, "httpTarget"],
      ["an httpTarget with credentials", "/admin/devices/v1", { transport: "http", httpTarget: "http://u:p@10.0.0.1/" }, "httpTarget"],
      ["an httpTarget with a query", "/admin/devices/v1", { transport: "http", httpTarget: "http://10.0.0.1/?a=1" }, "httpTarget"],
      ["an httpTarget with a fragment", "/admin/devices/v1", { transport: "http", httpTarget: "http://10.0.0.1/#f" }, "httpTarget"],
      ["a legacyAddress without port", "/admin/devices/v1", { transport: "xmpp", legacyAddress: "10.0.0.1" }, "legacyAddress"],
      ["a legacyAddress with port 0", "/admin/devices/v1", { transport: "xmpp", legacyAddress: "10.0.0.1:0" }, "legacyAddress"],
      ["a legacyAddress with port 65536", "/admin/devices/v1", { transport: "xmpp", legacyAddress: "10.0.0.1:65536" }, "legacyAddress"],
      ["an IPv6 legacyAddress without brackets", "/admin/devices/v1", { transport: "xmpp", legacyAddress: "::1:80" }, "legacyAddress"],
      ["timeoutMs 0", "/admin/devices/v1", { transport: "xmpp", timeoutMs: 0 }, "timeoutMs"],
      ["timeoutMs over 600000", "/admin/devices/v1", { transport: "xmpp", timeoutMs: 600_001 }, "timeoutMs"],
      ["timeoutMs fractional", "/admin/devices/v1", { transport: "xmpp", timeoutMs: 1.5 }, "timeoutMs"],
      ["timeoutMs as a string", "/admin/devices/v1", { transport: "xmpp", timeoutMs: "100" }, "timeoutMs"],
      ["maxInFlight 0", "/admin/devices/v1", { transport: "xmpp", maxInFlight: 0 }, "maxInFlight"],
      ["maxInFlight over 10000", "/admin/devices/v1", { transport: "xmpp", maxInFlight: 10_001 }, "maxInFlight"],
      ["another codec", "/admin/devices/v1", { transport: "xmpp", codec: "json" }, "codec"],
    ];
    for (const [label, path, body, field] of cases) {
      it(`PUT with ${label} → field ${field}`, async () => {
        const res = await admin(a).put(path, body);
        assert.equal(res.status, 400, res.text);
        const { error } = res.body as ErrorJson;
        assert.equal(error.code, "GW_INVALID_FIELD");
        assert.equal(error.field, field);
        assert.ok(error.message.includes(field), error.message);
        assert.equal(error.requestId, res.headers["x-request-id"]);
      });
    }

    it("invalid JSON, an empty body and invalid UTF-8 → field body", async () => {
      for (const res of [
        await putRaw(a, "/admin/devices/v1", '{"transport":'),
        await putRaw(a, "/admin/devices/v1", ""),
        await request(a.url)
          .put("/admin/devices/v1")
          .set("Authorization", AUTH)
          .set("Content-Type", "application/octet-stream")
          .send(Buffer.from([0x7b, 0xff, 0x7d])),
        await request(a.url)
          .patch("/admin/devices/imported-json-1")
          .set("Authorization", AUTH)
          .set("Content-Type", "application/json")
          .send("[1,"),
        await admin(a).patch("/admin/devices/imported-json-1", [1]),
      ]) {
        assert.equal(res.status, 400, res.text);
        assert.equal((res.body as ErrorJson).error.code, "GW_INVALID_FIELD");
        assert.equal((res.body as ErrorJson).error.field, "body");
      }
    });

    it("PATCH with an unknown field, even set to null → that field", async () => {
      for (const body of [{ colour: "red" }, { colour: null }]) {
        const res = await admin(a).patch("/admin/devices/imported-json-1", body).expect(400);
        assert.equal((res.body as ErrorJson).error.field, "colour");
      }
    });

    it("nothing refused was stored", async () => {
      await admin(a).get("/admin/devices/v1").expect(404);
      const imported = await admin(a).get("/admin/devices/imported-json-1").expect(200);
      assert.equal((imported.body as DeviceRecord).timeoutMs, 4000);
    });

    it("a body over 64 KiB is 413 GW_PAYLOAD_TOO_LARGE", async () => {
      const res = await admin(a).put("/admin/devices/v1", { transport: "xmpp", jid: `d@localhost/${"r".repeat(70_000)}` });
      assert.equal(res.status, 413);
      assert.equal((res.body as ErrorJson).error.code, "GW_PAYLOAD_TOO_LARGE");
    });
  });

  describe("legacy addresses", () => {
    it("one address belongs to one device: another device's claim is 409 GW_CONFLICT, in any spelling", async () => {
      await admin(a).put("/admin/devices/leg-1", { transport: "xmpp", legacyAddress: "Meter.LAN:8080" }).expect(201);
      assert.equal(((await admin(a).get("/admin/devices/leg-1")).body as DeviceRecord).legacyAddress, "meter.lan:8080");
      for (const spelling of ["meter.lan:8080", "METER.lan:08080"]) {
        const res = await admin(b).put("/admin/devices/leg-2", { transport: "xmpp", legacyAddress: spelling }).expect(409);
        const { error } = res.body as ErrorJson;
        assert.equal(error.code, "GW_CONFLICT");
        assert.equal(error.field, "legacyAddress");
        assert.match(error.message, /leg-1/);
      }
      await admin(a).get("/admin/devices/leg-2").expect(404);
      // A PATCH claiming it is refused the same way, and the entry is unchanged.
      await admin(a).put("/admin/devices/leg-2", { transport: "xmpp", legacyAddress: "10.0.0.2:80" }).expect(201);
      const patch = await admin(b).patch("/admin/devices/leg-2", { legacyAddress: "meter.lan:8080" }).expect(409);
      assert.equal((patch.body as ErrorJson).error.code, "GW_CONFLICT");
      assert.equal(((await admin(a).get("/admin/devices/leg-2")).body as DeviceRecord).legacyAddress, "10.0.0.2:80");
      // The owner may PUT it again.
      await admin(b).put("/admin/devices/leg-1", { transport: "xmpp", legacyAddress: "meter.lan:8080", timeoutMs: 9 }).expect(200);
    });

    it("the index follows an address that moves, and is removed with its device or its field", async () => {
      const registry = a.gateway.registry;
      const index = (address: string) => a.gateway.redis.client.get(a.gateway.redis.keys.legacyIndex(address));
      await admin(a).put("/admin/devices/mover", { transport: "xmpp", legacyAddress: "10.7.0.1:80" }).expect(201);
      assert.equal(await index("10.7.0.1:80"), "mover");
      await admin(b).patch("/admin/devices/mover", { legacyAddress: "[0:0::7]:80" }).expect(200);
      assert.equal(await index("10.7.0.1:80"), null, "the old address is free");
      assert.equal(await index("[::7]:80"), "mover");
      assert.equal((await registry.findByLegacyAddress("[::0:7]:080"))?.id, "mover");
      assert.equal(await registry.findByLegacyAddress("10.7.0.1:80"), undefined);
      // The freed address can be taken by another device at once.
      await admin(a).put("/admin/devices/taker", { transport: "xmpp", legacyAddress: "10.7.0.1:80" }).expect(201);
      await admin(a).patch("/admin/devices/mover", { legacyAddress: null }).expect(200);
      assert.equal(await index("[::7]:80"), null);
      await admin(a).delete("/admin/devices/taker").expect(204);
      assert.equal(await index("10.7.0.1:80"), null);
      assert.equal(await registry.findByLegacyAddress("10.7.0.1:80"), undefined);
    });

    it("two instances claiming one address at once: exactly one wins", async () => {
      for (let round = 0; round < 10; round++) {
        const address = `10.8.0.${round + 1}:80`;
        const [ra, rb] = await Promise.all([
          admin(a).put(`/admin/devices/race-a-${round}`, { transport: "xmpp", legacyAddress: address }),
          admin(b).put(`/admin/devices/race-b-${round}`, { transport: "xmpp", legacyAddress: address }),
        ]);
        assert.deepEqual([ra.status, rb.status].sort(), [201, 409], `round ${round}`);
        const winner = ra.status === 201 ? `race-a-${round}` : `race-b-${round}`;
        assert.equal((await a.gateway.registry.findByLegacyAddress(address))?.id, winner);
      }
    });
  });

  describe("resolution", () => {
    it("with DEFAULT_TRANSPORT=none, an unregistered device is 404 GW_UNKNOWN_DEVICE even when connected", async () => {
      const res = await request(c.url).get("/devices/unreg-dev/TEMPERATURE").expect(404);
      assert.equal((res.body as ErrorJson).error.code, "GW_UNKNOWN_DEVICE");
    });

    it("a device registered on A is served by C once A's change notice reaches it, and refused once deleted", async () => {
      await request(c.url).get("/devices/reg-dev/x").expect(404); // C now remembers that reg-dev has no entry
      await admin(a)
        .put("/admin/devices/reg-dev", { transport: "xmpp", jid: `reg-dev@${stack.prosody.vhost}/agent` })
        .expect(201);
      await registryChangeSeen([c], "reg-dev");
      const res = await request(c.url).get("/devices/reg-dev/TEMPERATURE?x=1").expect(200);
      assert.equal((res.body as EchoReport).device, "reg-dev");
      assert.equal((res.body as EchoReport).url, "/TEMPERATURE?x=1");
      await admin(b).delete("/admin/devices/reg-dev").expect(204);
      await registryChangeSeen([c], "reg-dev");
      const gone = await request(c.url).get("/devices/reg-dev/TEMPERATURE").expect(404);
      assert.equal((gone.body as ErrorJson).error.code, "GW_UNKNOWN_DEVICE");
    });

    it("an entry's jid is where the request goes (not the template)", async () => {
      // The registered JID names another account: the request reaches that device.
      await admin(a)
        .put("/admin/devices/alias", { transport: "xmpp", jid: `unreg-dev@${stack.prosody.vhost}/agent` })
        .expect(201);
      await registryChangeSeen([c], "alias");
      const res = await request(c.url).get("/devices/alias/who").expect(200);
      assert.equal((res.body as EchoReport).device, "unreg-dev");
    });

    it("the route of an http entry says transport http with its httpTarget", async () => {
      await admin(a)
        .put("/admin/devices/legacy-http", { transport: "http", httpTarget: "http://10.0.0.9:8080", maxInFlight: 2 })
        .expect(201);
      const resolver = new RegistryResolver(c.gateway.registry, {
        defaultTransport: "none",
        jidTemplate: c.config.devices.jidTemplate,
        timeoutMs: c.config.exchange.timeoutMs,
        maxInFlight: c.config.devices.maxInFlight,
      });
      const route = await resolver.resolve("legacy-http");
      assert.equal(route.transport, "http");
      assert.equal(route.httpTarget, "http://10.0.0.9:8080");
      assert.equal(route.maxInFlight, 2);
      assert.equal(route.timeoutMs, c.config.exchange.timeoutMs);
    });
  });

  it("a devices file with bad entries stops the start, naming every entry and field, before connecting", async () => {
    const bad = join(dir, "bad.yaml");
    await writeFile(
      bad,
      "- id: ok\n  transport: xmpp\n- id: 'no good'\n  transport: xmpp\n- id: h\n  transport: http\n- id: t\n  transport: xmpp\n  timeoutMs: 0\n",
    );
    const config = loadConfig(
      gatewayEnv(stack, {
        REDIS_KEY_PREFIX: PREFIX,
        GATEWAY_DEVICES_FILE: bad,
        XMPP_COMPONENT_DOMAIN: "gw2.localhost",
        XMPP_COMPONENT_SECRET: "s2",
      }),
    );
    const gateway = createGateway(config, createLogger("silent"));
    await assert.rejects(gateway.start(), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.problems.length, 3, err.message);
      assert.match(err.problems[0] ?? "", /entry 1 \(id "no good"\): field id/);
      assert.match(err.problems[1] ?? "", /entry 2 \(id "h"\): field httpTarget/);
      assert.match(err.problems[2] ?? "", /entry 3 \(id "t"\): field timeoutMs/);
      return true;
    });
    assert.equal(gateway.redis.client.status, "wait", "Redis was not connected");
    await admin(a).get("/admin/devices/ok").expect(404);
  });
});
