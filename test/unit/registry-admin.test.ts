/**
 * The admin API's HTTP behaviour on an in-memory store (no servers): the presence hook, methods, the
 * prefix switched off without a token, and input that never reaches the store. The same API against
 * real Redis and two instances is in test/e2e/admin-api.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import express from "express";
import request from "supertest";
import { GatewayError, type ErrorBody } from "../../gateway/errors.js";
import { errorHandler, sendError } from "../../gateway/http/error-response.js";
import { requestId } from "../../gateway/http/request-id.js";
import { adminRoutes, type AdminRouteDeps, type PresenceLookup } from "../../gateway/http/routes/admin.js";
import { createLogger } from "../../gateway/log.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import type { IdRange } from "../../gateway/registry/device-listing.js";
import type { DeviceStore } from "../../gateway/registry/redis-registry.js";

const TOKEN = "unit-test-token-0123456789";
const AUTH = `Bearer ${TOKEN}`;

class MemoryStore implements DeviceStore {
  readonly records = new Map<string, DeviceRecord>();
  writes = 0;
  get(id: string) {
    return Promise.resolve(this.records.get(id));
  }
  async put(record: DeviceRecord) {
    return (await this.upsert(record)).created;
  }
  upsert(record: DeviceRecord) {
    this.writes++;
    const created = !this.records.has(record.id);
    const stored = { ...record, updatedAt: "2024-01-01T00:00:00.000Z" };
    this.records.set(record.id, stored);
    return Promise.resolve({ created, record: stored });
  }
  delete(id: string) {
    return Promise.resolve(this.records.delete(id));
  }
  list() {
    return Promise.resolve([...this.records.values()].sort((a, b) => (a.id < b.id ? -1 : 1)));
  }
  findByLegacyAddress() {
    return Promise.resolve(undefined);
  }
  idsIn(range: IdRange, count: number) {
    return Promise.resolve(this.inRange(range).slice(0, count));
  }
  countIn(range: IdRange) {
    return Promise.resolve(this.inRange(range).length);
  }
  getMany(ids: readonly string[]) {
    return Promise.resolve(ids.map((id) => this.records.get(id)));
  }
  private inRange({ after, prefix }: IdRange): string[] {
    return [...this.records.keys()]
      .filter((id) => (after === undefined || id > after) && (prefix === undefined || id.startsWith(prefix)))
      .sort();
  }
}

/** The admin router between the app's request-id middleware and its 404 and error handlers (as in app.ts). */
function app(admin: Partial<AdminRouteDeps> & { registry: DeviceStore }) {
  const logger = createLogger("silent");
  const a = express();
  a.use(requestId());
  a.use(adminRoutes({ token: TOKEN, logger, ...admin }));
  a.use((_req, res) => sendError(res, new GatewayError("GW_NOT_FOUND")));
  a.use(errorHandler(logger));
  return a;
}

describe("admin API (in-memory store)", () => {
  it("GET one answers online from the presence hook: true, false, null, and null when it fails", async () => {
    const store = new MemoryStore();
    await store.upsert({ id: "d", transport: "xmpp" });
    const answers: Array<[PresenceLookup | undefined, boolean | null]> = [
      [{ isOnline: () => Promise.resolve(true) }, true],
      [{ isOnline: () => Promise.resolve(false) }, false],
      [{ isOnline: () => Promise.resolve(null) }, null],
      [{ isOnline: async () => Promise.reject(new Error("redis down")) }, null],
      [undefined, null],
    ];
    for (const [presence, online] of answers) {
      const res = await request(app({ registry: store, ...(presence ? { presence } : {}) }))
        .get("/admin/devices/d")
        .set("Authorization", AUTH)
        .expect(200);
      assert.deepEqual(res.body, { id: "d", transport: "xmpp", updatedAt: "2024-01-01T00:00:00.000Z", online });
    }
  });

  it("asks presence with the device id", async () => {
    const store = new MemoryStore();
    await store.upsert({ id: "dev-42", transport: "xmpp" });
    const asked: string[] = [];
    await request(app({ registry: store, presence: { isOnline: (id) => (asked.push(id), Promise.resolve(true)) } }))
      .get("/admin/devices/dev-42")
      .set("Authorization", AUTH)
      .expect(200);
    assert.deepEqual(asked, ["dev-42"]);
  });

  it("without a token, every /admin path is an unknown route (404 GW_NOT_FOUND), token or not", async () => {
    const store = new MemoryStore();
    const off = app({ registry: store, token: undefined });
    for (const [method, path] of [
      ["get", "/admin"],
      ["get", "/admin/devices"],
      ["put", "/admin/devices/x"],
      ["delete", "/admin/devices/x"],
      ["patch", "/admin/devices/x"],
      ["get", "/admin/other"],
    ] as const) {
      const res = await request(off)[method](path).set("Authorization", AUTH).send({ transport: "xmpp" });
      assert.equal(res.status, 404, `${method} ${path}`);
      assert.equal((res.body as ErrorBody).error.code, "GW_NOT_FOUND");
      assert.equal(res.headers["www-authenticate"], undefined);
    }
    assert.equal(store.writes, 0);
  });

  it("asks for the token before anything else, even on unknown admin paths", async () => {
    const res = await request(app({ registry: new MemoryStore() }))
      .get("/admin/whatever")
      .expect(401);
    assert.equal((res.body as ErrorBody).error.code, "GW_UNAUTHORIZED");
    assert.equal(res.headers["www-authenticate"], "Bearer");
    await request(app({ registry: new MemoryStore() }))
      .get("/admin/whatever")
      .set("Authorization", AUTH)
      .expect(404);
  });

  it("answers 405 with Allow for methods a path does not take", async () => {
    const a = app({ registry: new MemoryStore() });
    const list = await request(a).post("/admin/devices").set("Authorization", AUTH).send({}).expect(405);
    assert.equal(list.headers.allow, "GET, HEAD");
    assert.equal((list.body as ErrorBody).error.code, "GW_METHOD_NOT_ALLOWED");
    const one = await request(a).post("/admin/devices/x").set("Authorization", AUTH).send({}).expect(405);
    assert.equal(one.headers.allow, "GET, HEAD, PUT, PATCH, DELETE");
    const bulk = await request(a).delete("/admin/devices/bulk").set("Authorization", AUTH).expect(404);
    assert.equal((bulk.body as ErrorBody).error.code, "GW_UNKNOWN_DEVICE", "the device named bulk, which does not exist");
    const options = await request(a).options("/admin/devices/bulk").set("Authorization", AUTH).expect(405);
    assert.equal(options.headers.allow, "GET, HEAD, PUT, PATCH, DELETE, POST");
  });

  it("never writes refused input, and marks answers no-store", async () => {
    const store = new MemoryStore();
    const a = app({ registry: store });
    const res = await request(a).put("/admin/devices/x").set("Authorization", AUTH).send({ transport: "carrier-pigeon" }).expect(400);
    assert.equal((res.body as ErrorBody).error.field, "transport");
    assert.equal(res.headers["cache-control"], "no-store");
    assert.equal(store.writes, 0);
  });

  it("PATCH keeps a __proto__ key from reaching any prototype", async () => {
    const store = new MemoryStore();
    await store.upsert({ id: "x", transport: "xmpp" });
    const res = await request(app({ registry: store }))
      .patch("/admin/devices/x")
      .set("Authorization", AUTH)
      .set("Content-Type", "application/json")
      .send('{"__proto__":{"transport":"http"}}')
      .expect(400);
    assert.equal((res.body as ErrorBody).error.field, "__proto__");
    assert.equal(({} as { transport?: unknown }).transport, undefined);
  });

  it("reads a JSON body whatever its Content-Type says", async () => {
    const res = await request(app({ registry: new MemoryStore() }))
      .put("/admin/devices/x")
      .set("Authorization", AUTH)
      .set("Content-Type", "text/plain")
      .send('{"transport":"xmpp"}')
      .expect(201);
    assert.equal(res.headers.location, "/admin/devices/x");
  });

  it("the listing's online filter: asks isOnline per entry without a batch lookup, and is refused without presence", async () => {
    const store = new MemoryStore();
    for (const id of ["a", "b", "c"]) await store.upsert({ id, transport: "xmpp" });
    const asked: string[] = [];
    const presence: PresenceLookup = { isOnline: (id) => (asked.push(id), Promise.resolve(id === "b" ? true : id === "c" ? null : false)) };
    const on = await request(app({ registry: store, presence }))
      .get("/admin/devices?online=true")
      .set("Authorization", AUTH)
      .expect(200);
    assert.deepEqual(
      (on.body as { devices: DeviceRecord[] }).devices.map((d) => d.id),
      ["b"],
    );
    const off = await request(app({ registry: store, presence }))
      .get("/admin/devices?online=false")
      .set("Authorization", AUTH)
      .expect(200);
    assert.deepEqual(
      (off.body as { devices: DeviceRecord[] }).devices.map((d) => d.id),
      ["a", "c"],
      "unknown counts as not online",
    );
    assert.deepEqual(asked.sort(), ["a", "a", "b", "b", "c", "c"]);
    const refused = await request(app({ registry: store }))
      .get("/admin/devices?online=true")
      .set("Authorization", AUTH)
      .expect(400);
    assert.equal((refused.body as ErrorBody).error.field, "online");
    const bulk = await request(app({ registry: store }))
      .post("/admin/devices/bulk")
      .set("Authorization", AUTH)
      .send({ filter: { online: true }, set: { timeoutMs: 5 } })
      .expect(400);
    assert.equal((bulk.body as ErrorBody).error.field, "filter.online");
    assert.equal(store.writes, 3);
  });

  it("answers HEAD on the list and on a device without a body", async () => {
    const store = new MemoryStore();
    await store.upsert({ id: "x", transport: "xmpp" });
    const a = app({ registry: store });
    await request(a).head("/admin/devices").set("Authorization", AUTH).expect(200);
    await request(a).head("/admin/devices/x").set("Authorization", AUTH).expect(200);
    await request(a).head("/admin/devices/y").set("Authorization", AUTH).expect(404);
  });
});
