// The admin API at a fleet's size (docs/admin-api.md, "Listing" and "Bulk moves") against real Redis and
// Prosody: 10,000 registry entries walked in pages, filtered by transport, prefix and presence (real agents),
// changed mid-walk, moved in bulk by ids and by filter page after page; bad parameters and bodies refused.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import request from "supertest";
import type { DeviceRecord, Transport } from "../../gateway/registry/device.js";
import { RedisKeys } from "../../gateway/redis/keys.js";
import { pollUntil } from "../../local-stack/ports.js";
import { listAll, listingPage } from "../helpers/admin-listing.js";
import { echoDevice } from "../helpers/echo-device.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, testComponents, type Stack } from "../helpers/stack.js";

const TOKEN = `admin-${randomBytes(16).toString("hex")}`;
const AUTH = `Bearer ${TOKEN}`;
const N = 10_000;
const ids = Array.from({ length: N }, (_, i) => `fleet-${String(i).padStart(5, "0")}`);
/** Every tenth on http, one on shadow, the rest on xmpp. */
const SHADOW = 9995;
const transportOf = (i: number): Transport => (i === SHADOW ? "shadow" : i % 10 === 0 ? "http" : "xmpp");
const httpIds = ids.filter((_, i) => transportOf(i) === "http");
/** Devices with a real agent connected over Prosody: two on xmpp, one on http. */
const ONLINE = ["fleet-00001", "fleet-00002", "fleet-00010"];

function entry(i: number): DeviceRecord {
  const transport = transportOf(i);
  const id = ids[i] as string;
  return transport === "xmpp" ? { id, transport } : { id, transport, httpTarget: `http://10.1.${(i >> 8) & 255}.${i & 255}:8080` };
}

interface ErrorJson {
  error: { code: string; message: string; field?: string };
}

interface BulkAnswer {
  dryRun: boolean;
  matched: number;
  changed: number;
  unchanged: number;
  failed: number;
  results: Array<{
    id: string;
    outcome: string;
    transport?: { from: string; to: string };
    error?: { code: string; message: string; field?: string };
  }>;
  nextCursor: string | null;
  remaining: number;
}

describe("admin API at a fleet's size: pages, filters, bulk moves", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;

  const bulk = (body: unknown) =>
    request(gw.url)
      .post("/admin/devices/bulk")
      .set("Authorization", AUTH)
      .send(body as object);

  /** Every entry as Redis holds it now, by id (straight from the registry, not through the API). */
  const snapshot = async (): Promise<string[]> => (await gw.gateway.registry.getMany(ids)).map((r) => JSON.stringify(r ?? null));

  /** Calls a bulk move by filter until nextCursor is null; answers every call's answer. */
  async function bulkWalk(body: Record<string, unknown>): Promise<BulkAnswer[]> {
    const answers: BulkAnswer[] = [];
    let cursor: string | null = null;
    for (let calls = 0; calls < 1000; calls++) {
      const res = await bulk({ ...body, cursor });
      assert.equal(res.status, 200, res.text.slice(0, 300));
      const answer = res.body as BulkAnswer;
      answers.push(answer);
      if (answer.nextCursor === null) return answers;
      cursor = answer.nextCursor;
    }
    assert.fail("the bulk walk did not end");
  }
  const total = (answers: BulkAnswer[], key: "matched" | "changed" | "unchanged" | "failed") => answers.reduce((n, a) => n + a[key], 0);

  before(async () => {
    stack = teardown.stopLater("stack", await startStack({ prosody: { components: testComponents(2) } }));
    gw = teardown.stopLater("gateway", await startGateway(stack, { GATEWAY_ADMIN_TOKEN: TOKEN }));
    // Written straight to the registry, 500 at a time (their commands share socket writes), not one PUT per device.
    for (let i = 0; i < N; i += 500) {
      await Promise.all(ids.slice(i, i + 500).map((_, j) => gw.gateway.registry.upsert(entry(i + j))));
    }
    teardown.stopLater("agents", await startFleet(stack.prosody, ONLINE, (id) => echoDevice(id)));
    for (const id of ONLINE) {
      await pollUntil(`${id} online in the gateway's presence`, async () => {
        const res = await request(gw.url).get(`/admin/devices/${id}`).set("Authorization", AUTH);
        return (res.body as { online?: boolean }).online === true;
      });
    }
  });
  after(() => teardown.run());

  describe("listing", () => {
    it("a walk returns every entry once, in id order, with remaining counting down to the last page", async () => {
      for (const limit of ["100", "1000", "999"]) {
        let seen = 0;
        const all = await listAll(
          gw.url,
          TOKEN,
          { limit },
          {
            onPage: (page) => {
              assert.ok(page.devices.length <= Number(limit));
              seen += page.devices.length;
              assert.equal(page.remaining, N - seen, `limit ${limit}: remaining after ${seen}`);
              if (page.nextCursor !== null)
                assert.equal(page.devices.length, Number(limit), "an unfiltered page is full unless it is the last");
            },
          },
        );
        assert.deepEqual(
          all.map((d) => d.id),
          ids,
          `limit ${limit}`,
        );
      }
      const first = await listingPage(gw.url, TOKEN);
      assert.equal(first.devices.length, 100, "100 by default");
      assert.deepEqual(first.devices[0], { ...entry(0), updatedAt: first.devices[0]?.updatedAt }, "entries as stored");
      assert.equal(Buffer.from(first.nextCursor ?? "", "base64url").toString(), "fleet-00099");
    });

    it("filters by transport (several at once), walking on past pages that hold fewer entries, or none", async () => {
      const http = await listAll(gw.url, TOKEN, { transport: "http", limit: "50" });
      assert.deepEqual(
        http.map((d) => d.id),
        httpIds,
      );
      assert.ok(http.every((d) => d.transport === "http"));
      const both = await listAll(gw.url, TOKEN, { transport: "shadow,http", limit: "1000" });
      assert.deepEqual(
        both.map((d) => d.id),
        ids.filter((_, i) => transportOf(i) !== "xmpp"),
      );
      // One entry on shadow, at the end: a page examines at most max(limit x 10, 1000) entries.
      const first = await listingPage(gw.url, TOKEN, { transport: "shadow", limit: "1" });
      assert.deepEqual([first.devices, first.remaining], [[], N - 1000]);
      assert.notEqual(first.nextCursor, null);
      let pages = 0;
      const shadow = await listAll(gw.url, TOKEN, { transport: "shadow", limit: "1" }, { onPage: () => void pages++ });
      assert.deepEqual(
        shadow.map((d) => d.id),
        [ids[SHADOW]],
      );
      assert.equal(pages, 11, "1000 entries examined per page; the tenth stops at its match, the eleventh reads the 4 after it");
    });

    it("filters by prefix, in any case, remaining counting only within it", async () => {
      const page = await listingPage(gw.url, TOKEN, { prefix: "FLEET-01", limit: "100" });
      assert.equal(page.remaining, 900);
      const all = await listAll(gw.url, TOKEN, { prefix: "fleet-01", limit: "300" });
      assert.deepEqual(
        all.map((d) => d.id),
        ids.slice(1000, 2000),
      );
      assert.deepEqual(
        await listAll(gw.url, TOKEN, { prefix: "fleet-0999" }),
        await listAll(gw.url, TOKEN, { prefix: "fleet-0999", limit: "3" }),
      );
      assert.equal((await listAll(gw.url, TOKEN, { prefix: "fleet-0999" })).length, 10);
      assert.deepEqual(await listAll(gw.url, TOKEN, { prefix: "nobody" }), []);
      const none = await listingPage(gw.url, TOKEN, { prefix: "nobody" });
      assert.deepEqual(none, { devices: [], nextCursor: null, remaining: 0 });
    });

    it("filters by presence: the agents connected over Prosody, and the others", async () => {
      assert.deepEqual(
        (await listAll(gw.url, TOKEN, { online: "true", limit: "1000" })).map((d) => d.id),
        ONLINE,
      );
      assert.deepEqual(
        (await listAll(gw.url, TOKEN, { online: "true", transport: "http" })).map((d) => d.id),
        ["fleet-00010"],
      );
      assert.deepEqual(
        (await listAll(gw.url, TOKEN, { online: "false", prefix: "fleet-0001" })).map((d) => d.id),
        ids.slice(10, 20).filter((id) => !ONLINE.includes(id)),
      );
    });

    it("entries created and deleted mid-walk do not break it: the others come once each, in order", async () => {
      const changes = { done: false };
      const aheadGone = "fleet-05000";
      const behindGone = "fleet-00100";
      const created = ["fleet-00100a", "fleet-05000a"];
      const walked = await listAll(
        gw.url,
        TOKEN,
        { limit: "700" },
        {
          onPage: async () => {
            if (changes.done) return;
            changes.done = true;
            await gw.gateway.registry.delete(aheadGone);
            await gw.gateway.registry.delete(behindGone);
            for (const id of created) await gw.gateway.registry.upsert({ id, transport: "xmpp" });
          },
        },
      );
      const walkedIds = walked.map((d) => d.id);
      assert.deepEqual(walkedIds, [...new Set(walkedIds)].sort(), "each once, in order");
      const throughout = ids.filter((id) => id !== aheadGone && id !== behindGone);
      assert.deepEqual(
        walkedIds.filter((id) => !created.includes(id) && id !== behindGone),
        throughout,
      );
      assert.ok(!walkedIds.includes(aheadGone), "deleted before the walk reached it");
      assert.ok(walkedIds.includes("fleet-05000a") && !walkedIds.includes("fleet-00100a"), "created ahead of the walk, and behind it");
      for (const id of created) await gw.gateway.registry.delete(id);
      await gw.gateway.registry.upsert(entry(5000));
      await gw.gateway.registry.upsert(entry(100));
      assert.equal((await listAll(gw.url, TOKEN, { limit: "1000" })).length, N);
    });

    it("refuses an unknown parameter or a bad value with 400 GW_INVALID_FIELD naming it", async () => {
      for (const [query, field] of [
        ["foo=1", "foo"],
        ["limit=0", "limit"],
        ["limit=1001", "limit"],
        ["limit=abc", "limit"],
        ["limit=5&limit=6", "limit"],
        ["cursor=not-a-cursor!", "cursor"],
        ["cursor=ZmxlZXQtMDAwOTk=", "cursor"],
        ["transport=carrier-pigeon", "transport"],
        ["online=maybe", "online"],
        ["prefix=a%2Fb", "prefix"],
        ["transpor=http", "transpor"],
      ]) {
        const res = await request(gw.url).get(`/admin/devices?${query}`).set("Authorization", AUTH);
        assert.equal(res.status, 400, `${query}: ${res.text}`);
        const { error } = res.body as ErrorJson;
        assert.deepEqual([error.code, error.field], ["GW_INVALID_FIELD", field], query);
        assert.equal(res.headers["cache-control"], "no-store");
      }
      const unauthenticated = await request(gw.url).get("/admin/devices?foo=1");
      assert.equal(unauthenticated.status, 401, "the token is asked for before the parameters are read");
    });
  });

  describe("bulk moves", () => {
    it("by ids: each device changed on its own, unknown ids failed, a repeated id once", async () => {
      const res = await bulk({ ids: ["fleet-00020", "fleet-00021", "nope-1", "FLEET-00020"], set: { transport: "xmpp" } }).expect(200);
      assert.deepEqual(res.body, {
        dryRun: false,
        matched: 3,
        changed: 1,
        unchanged: 1,
        failed: 1,
        results: [
          { id: "fleet-00020", outcome: "changed", transport: { from: "http", to: "xmpp" } },
          { id: "fleet-00021", outcome: "unchanged" },
          { id: "nope-1", outcome: "failed", error: { code: "GW_UNKNOWN_DEVICE", message: "no device nope-1 in the registry" } },
        ],
        nextCursor: null,
        remaining: 0,
      });
      const moved = await gw.gateway.registry.get("fleet-00020");
      assert.deepEqual(
        { ...moved, updatedAt: undefined },
        { ...entry(20), transport: "xmpp", updatedAt: undefined },
        "merged: httpTarget kept",
      );
      assert.equal(await gw.gateway.registry.get("nope-1"), undefined, "an unknown id is not created");
      await bulk({ ids: ["fleet-00020"], set: { transport: "http" } }).expect(200);
      assert.equal((await gw.gateway.registry.get("fleet-00020"))?.transport, "http");
    });

    it("reports partial failures: an entry the change would make invalid is left as it was", async () => {
      const before = await gw.gateway.registry.get("fleet-00031");
      const res = await bulk({ ids: ["fleet-00030", "fleet-00031"], set: { transport: "xmpp", fallback: "http" } }).expect(200);
      const answer = res.body as BulkAnswer;
      assert.deepEqual([answer.changed, answer.failed], [1, 1]);
      assert.deepEqual(answer.results[1], {
        id: "fleet-00031",
        outcome: "failed",
        error: { code: "GW_INVALID_FIELD", field: "fallback", message: "fallback http needs httpTarget: the device's legacy base URL" },
      });
      assert.deepEqual(await gw.gateway.registry.get("fleet-00031"), before);
      assert.equal((await gw.gateway.registry.get("fleet-00030"))?.fallback, "http");
      await bulk({ ids: ["fleet-00030"], set: { transport: "http", fallback: null } }).expect(200);
      const restored = await gw.gateway.registry.get("fleet-00030");
      assert.deepEqual({ ...restored, updatedAt: undefined }, { ...entry(30), updatedAt: undefined }, "null removed the field");
    });

    it("a dry run answers what would change and writes nothing (Redis checked)", async () => {
      const before = await snapshot();
      const answers = await bulkWalk({ filter: { transport: "http" }, set: { transport: "xmpp" }, dryRun: true, limit: 1000 });
      assert.ok(answers.every((a) => a.dryRun));
      assert.equal(total(answers, "changed"), httpIds.length);
      assert.deepEqual(
        answers.flatMap((a) => a.results.map((r) => r.id)),
        httpIds,
      );
      assert.ok(answers.every((a) => a.results.every((r) => r.transport?.from === "http" && r.transport.to === "xmpp")));
      assert.deepEqual(await snapshot(), before, "no entry written");
    });

    it("by filter, page after page over 10,000 entries; the same move again changes nothing", async () => {
      const answers = await bulkWalk({ filter: { prefix: "fleet-" }, set: { maxInFlight: 7 }, limit: 1000 });
      assert.deepEqual([total(answers, "matched"), total(answers, "changed"), total(answers, "failed")], [N, N, 0]);
      assert.ok(answers.every((a) => a.matched <= 1000));
      assert.deepEqual(
        answers.flatMap((a) => a.results.map((r) => r.id)),
        ids,
        "each once, in order",
      );
      const listed = await listAll(gw.url, TOKEN, { limit: "1000" });
      assert.deepEqual(
        listed.map(({ updatedAt: _u, ...rest }) => rest),
        ids.map((_, i) => ({ ...entry(i), maxInFlight: 7 })),
      );
      const again = await bulkWalk({ filter: { prefix: "fleet-" }, set: { maxInFlight: 7 }, limit: 1000 });
      assert.deepEqual([total(again, "unchanged"), total(again, "changed")], [N, 0]);
      // Back as they were: `null` removes the field.
      const back = await bulkWalk({ filter: { prefix: "fleet-" }, set: { maxInFlight: null }, limit: 1000 });
      assert.equal(total(back, "changed"), N);
    });

    it("moves the devices on http to xmpp by filter (with the http fallback), in pages of 250", async () => {
      const answers = await bulkWalk({
        filter: { transport: "http", prefix: "fleet-" },
        set: { transport: "xmpp", fallback: "http" },
        limit: 250,
      });
      assert.equal(total(answers, "changed"), httpIds.length);
      assert.deepEqual(await listAll(gw.url, TOKEN, { transport: "http" }), []);
      // Back, by ids: 1000 in one call.
      const back = await bulk({ ids: httpIds, set: { transport: "http", fallback: null } }).expect(200);
      assert.equal((back.body as BulkAnswer).changed, httpIds.length);
      assert.deepEqual(
        (await listAll(gw.url, TOKEN, { transport: "http", limit: "1000" })).map((d) => d.id),
        httpIds,
      );
    });

    it("by the online filter: the devices whose agents are connected", async () => {
      const res = await bulk({ filter: { online: true }, set: { timeoutMs: 999 }, dryRun: true }).expect(200);
      assert.deepEqual(
        (res.body as BulkAnswer).results.map((r) => r.id),
        ONLINE,
      );
    });

    it("takes 1000 ids of 64 characters (more than a device's 64 KiB body)", async () => {
      const long = Array.from({ length: 1000 }, (_, i) => `x${String(i).padStart(63, "0")}`);
      const res = await bulk({ ids: long, set: { transport: "xmpp" } }).expect(200);
      const answer = res.body as BulkAnswer;
      assert.deepEqual([answer.matched, answer.failed], [1000, 1000]);
      assert.ok(answer.results.every((r) => r.error?.code === "GW_UNKNOWN_DEVICE"));
    });

    it("refuses a bad request before touching any device: fields outside set's list, bad filters, bad bodies", async () => {
      const before = await snapshot();
      for (const [body, field] of [
        [{ ids: ["fleet-00001"], set: { httpTarget: "http://10.0.0.1" } }, "set.httpTarget"],
        [{ ids: ["fleet-00001"], set: { legacyAddress: "10.0.0.1:80" } }, "set.legacyAddress"],
        [{ ids: ["fleet-00001"], set: { jid: "a@b/c" } }, "set.jid"],
        [{ ids: ["fleet-00001"], set: { timeoutMs: -1 } }, "set.timeoutMs"],
        [{ filter: {}, set: { transport: "xmpp" } }, "filter"],
        [{ filter: { transport: "http", colour: "red" }, set: { transport: "xmpp" } }, "filter.colour"],
        [{ filter: { prefix: "fleet-" }, set: { transport: "xmpp" }, limit: 1001 }, "limit"],
        [{ ids: ["fleet-00001"], filter: { prefix: "fleet-" }, set: { transport: "xmpp" } }, "ids"],
        [{ set: { transport: "xmpp" } }, "ids"],
        [{ ids: ["fleet-00001"], set: { transport: "xmpp" }, dryrun: true }, "dryrun"],
      ] as const) {
        const res = await bulk(body);
        assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.text}`);
        const { error } = res.body as ErrorJson;
        assert.deepEqual([error.code, error.field], ["GW_INVALID_FIELD", field], JSON.stringify(body));
      }
      for (const text of ["{", "", "[1]", '"xmpp"']) {
        const res = await request(gw.url)
          .post("/admin/devices/bulk")
          .set("Authorization", AUTH)
          .set("Content-Type", "application/json")
          .send(text);
        assert.equal(res.status, 400, text);
        assert.deepEqual([(res.body as ErrorJson).error.code, (res.body as ErrorJson).error.field], ["GW_INVALID_FIELD", "body"], text);
      }
      const huge = JSON.stringify({ ids: ["fleet-00001"], set: { transport: "xmpp" }, pad: "x".repeat(300 * 1024) });
      const tooLarge = await request(gw.url)
        .post("/admin/devices/bulk")
        .set("Authorization", AUTH)
        .set("Content-Type", "application/json")
        .send(huge);
      assert.equal(tooLarge.status, 413);
      assert.equal((tooLarge.body as ErrorJson).error.code, "GW_PAYLOAD_TOO_LARGE");
      const wrongMethod = await request(gw.url)
        .put("/admin/devices/bulk")
        .set("Authorization", AUTH)
        .send({ ids: ["x"] });
      assert.equal(wrongMethod.status, 400, "PUT there is the device named bulk: its entry is checked as one");
      const options = await request(gw.url).options("/admin/devices/bulk").set("Authorization", AUTH);
      assert.deepEqual([options.status, options.headers.allow], [405, "GET, HEAD, PUT, PATCH, DELETE, POST"]);
      assert.deepEqual(await snapshot(), before, "nothing written");
    });
  });

  it("a registry written before the ordered ids: an instance's start fills them in from the id set", async () => {
    const prefix = `t-old-${randomBytes(4).toString("hex")}:`;
    const keys = new RedisKeys(prefix);
    const client = gw.gateway.redis.client;
    const old = ["old-3", "old-1", "old-2"];
    for (const id of old) await client.set(keys.device(id), JSON.stringify({ id, transport: "xmpp" }));
    await client.sadd(keys.devices(), ...old);
    const second = testComponents(2)[1] as { domain: string; secret: string };
    const other = teardown.stopLater(
      "gateway on the old registry",
      await startGateway(stack, {
        GATEWAY_ADMIN_TOKEN: TOKEN,
        REDIS_KEY_PREFIX: prefix,
        XMPP_COMPONENT_DOMAIN: second.domain,
        XMPP_COMPONENT_SECRET: second.secret,
      }),
    );
    assert.deepEqual(await client.zrange(keys.deviceIds(), 0, -1), ["old-1", "old-2", "old-3"]);
    assert.deepEqual(
      (await listAll(other.url, TOKEN, { limit: "2" })).map((d) => d.id),
      ["old-1", "old-2", "old-3"],
    );
    await other.stop();
  });

  it("with Redis gone, a page and a bulk move are 503 GW_STORE_UNAVAILABLE", async () => {
    await stack.redis.kill();
    await pollUntil("the gateway to see Redis gone", () => !gw.gateway.redis.ready);
    const page = await request(gw.url).get("/admin/devices").set("Authorization", AUTH);
    assert.deepEqual([page.status, (page.body as ErrorJson).error.code], [503, "GW_STORE_UNAVAILABLE"]);
    const moved = await bulk({ filter: { prefix: "fleet-" }, set: { transport: "xmpp" } });
    assert.deepEqual([moved.status, (moved.body as ErrorJson).error.code], [503, "GW_STORE_UNAVAILABLE"]);
  });
});
