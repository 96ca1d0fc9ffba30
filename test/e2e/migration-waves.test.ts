// Migration waves (docs/admin-api.md, "Migration waves") on real parts: Redis, Prosody, device agents and
// HTTP devices. A wave whose XMPP side fails is rolled back by itself, a healthy one completes, two instances
// add up their counts and roll back exactly once, a percentage picks from a 10,000-entry registry, an
// operator rolls back by hand, and bad requests are refused naming the field. Every wait is for an event (a
// wave's state, a count), polled with an overall bound; the check interval is made short so events come soon.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import type { WaveView } from "../../gateway/waves/wave.js";
import { startFleet } from "../helpers/fleet.js";
import { registryChangeSeen, startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startDeviceServer, type DeviceServer } from "../helpers/http-device.js";
import { scrapeMetric } from "../helpers/metrics.js";
import { startStack, Teardown, testComponents, type Stack } from "../helpers/stack.js";

const TOKEN = "waves-admin-token-0123456789";
/** Short checks so that waves end soon after their event; the tests still wait for the event itself. */
const COMMON = { GATEWAY_ADMIN_TOKEN: TOKEN, GATEWAY_WAVE_CHECK_MS: "50", GATEWAY_REQUEST_TIMEOUT_MS: "5000" };
const EVENT_BOUND_MS = 30_000;

interface Answer<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
}

async function admin<T = Record<string, unknown>>(gw: RunningGateway, method: string, path: string, body?: unknown): Promise<Answer<T>> {
  const res = await fetch(`${gw.url}${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : {}) as T, headers: res.headers };
}

const wave = async (gw: RunningGateway, id: string) => (await admin<WaveView>(gw, "GET", `/admin/waves/${id}`)).body;

async function startWave(gw: RunningGateway, body: Record<string, unknown>): Promise<WaveView> {
  const created = await admin<WaveView>(gw, "POST", "/admin/waves", body);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.headers.get("location"), `/admin/waves/${created.body.id}`);
  return created.body;
}

async function register(gw: RunningGateway, ids: readonly string[], record: Omit<DeviceRecord, "id">): Promise<void> {
  for (const id of ids) assert.ok((await admin(gw, "PUT", `/admin/devices/${id}`, record)).status < 300, `PUT ${id}`);
}

async function transportOf(gw: RunningGateway, id: string): Promise<string | undefined> {
  return (await gw.gateway.registry.get(id))?.transport;
}

/** Sends `send` rounds (each a few requests) until `done`, at most `rounds` times, then waits for `done` alone. */
async function driveUntil(what: string, send: () => Promise<void>, done: () => Promise<boolean>, rounds = 300): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await send();
    if (await done()) return;
  }
  await pollUntil(what, async () => (await done()) || undefined, { timeoutMs: EVENT_BOUND_MS });
}

async function get(url: string): Promise<number> {
  const res = await fetch(url);
  await res.arrayBuffer();
  return res.status;
}

const healthy = (_req: IncomingMessage, res: ServerResponse) => {
  res.setHeader("Content-Type", "text/plain");
  res.end("ok");
};

describe("migration waves", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let device: DeviceServer;

  before(async () => {
    stack = teardown.stopLater("stack", await startStack({ prosody: { components: testComponents(2) } }));
    gw = teardown.stopLater("gateway", await startGateway(stack, COMMON));
    device = teardown.stopLater("healthy device", await startDeviceServer(healthy));
    await register(gw, ["base-1", "base-2", "base-3"], { transport: "http", httpTarget: device.url });
  });
  after(() => teardown.run());

  it("rolls back by itself a wave whose XMPP side fails while the HTTP baseline is healthy", async () => {
    // On HTTP their devices answer; once on XMPP nothing answers for them (no agent): 5xx from the gateway.
    const ids = ["bad-1", "bad-2", "bad-3", "bad-4"];
    await register(gw, ids, { transport: "http", httpTarget: device.url });
    await register(gw, ["bad-5"], { transport: "shadow", httpTarget: device.url });
    const rollbacksBefore = await scrapeMetric(gw.url, "gateway_migration_wave_rollbacks_total", { reason: "threshold" });
    const created = await startWave(gw, { ids: [...ids, "bad-5"], windowMs: 600_000, minRequests: 20, maxErrorRateIncrease: 0.05 });
    assert.equal(created.state, "watching");
    assert.equal(created.devices, 5);
    assert.deepEqual(created.deviceIds, [...ids, "bad-5"]);
    for (const id of [...ids, "bad-5"]) assert.equal(await transportOf(gw, id), "xmpp");
    const statuses: number[] = [];
    let n = 0;
    await driveUntil(
      "the failing wave rolled back",
      async () => {
        const id = ids[n++ % ids.length] as string;
        statuses.push(await get(`${gw.url}/devices/${id}/reading`));
        assert.equal(await get(`${gw.url}/devices/base-${(n % 3) + 1}/reading`), 200);
      },
      async () => (await wave(gw, created.id)).state === "rolled-back",
    );
    // Every request before the rollback failed (those after it are served over HTTP again).
    const failedFirst = statuses.findIndex((s) => s < 500);
    assert.ok(failedFirst === -1 || failedFirst >= 20, `the wave's requests failed: ${statuses.join(",")}`);
    const ended = await wave(gw, created.id);
    assert.equal(ended.rollback?.reason, "threshold");
    assert.equal(ended.rollback.restored, 5);
    assert.deepEqual(ended.rollback.skipped, []);
    assert.match(ended.rollback.detail, /^error rate 1\.00 against 0\.00 \(\+1\.00 > 0\.05\) after \d+ requests$/);
    assert.ok(ended.observed.wave.requests >= 20, JSON.stringify(ended.observed));
    assert.equal(ended.observed.wave.errorRate, 1);
    assert.equal(ended.observed.baseline.errors, 0);
    assert.ok(ended.observed.baseline.requests > 0);
    assert.ok(ended.endedAt !== null);
    for (const id of ids) assert.equal(await transportOf(gw, id), "http");
    assert.equal(await transportOf(gw, "bad-5"), "shadow", "each device back to the transport it had");
    // Served over HTTP again.
    assert.equal(await get(`${gw.url}/devices/bad-1/reading`), 200);
    assert.equal(await scrapeMetric(gw.url, "gateway_migration_wave_rollbacks_total", { reason: "threshold" }), rollbacksBefore + 1);
    assert.ok((await scrapeMetric(gw.url, "gateway_migration_waves", { state: "rolled-back" })) >= 1);
    // The ended wave's series are gone.
    assert.equal(await scrapeMetric(gw.url, "gateway_migration_wave_requests", { wave: created.id }), 0);
  });

  it("completes a healthy wave at the end of its window: its devices stay on XMPP", async () => {
    const ids = ["good-1", "good-2"];
    const fleet = teardown.stopLater("fleet", await startFleet(stack.prosody, ids, () => healthy));
    for (const id of ids) await register(gw, [id], { transport: "http", httpTarget: fleet.byId(id).server.url });
    const created = await startWave(gw, { ids, windowMs: 1000, minRequests: 1 });
    let n = 0;
    await driveUntil(
      "the healthy wave completed",
      async () => {
        assert.equal(await get(`${gw.url}/devices/${ids[n++ % 2]}/reading`), 200);
        assert.equal(await get(`${gw.url}/devices/base-1/reading`), 200);
      },
      async () => (await wave(gw, created.id)).state === "completed",
    );
    const ended = await wave(gw, created.id);
    assert.equal(ended.rollback, null);
    assert.ok(ended.endedAt !== null && Date.parse(ended.endedAt) >= Date.parse(ended.watchUntil));
    assert.equal(ended.observed.wave.errors, 0);
    for (const id of ids) assert.equal(await transportOf(gw, id), "xmpp");
    assert.equal(await get(`${gw.url}/devices/good-1/reading`), 200);
    const summary = (await admin<{ waves: { completed: number; watching: unknown[] } }>(gw, "GET", "/admin/migration")).body;
    assert.ok(summary.waves.completed >= 1);
    assert.ok(!summary.waves.watching.some((w) => (w as WaveView).id === created.id));

    // An operator may still roll a completed wave back.
    const rolled = await admin<WaveView>(gw, "POST", `/admin/waves/${created.id}/rollback`);
    assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
    assert.equal(rolled.body.state, "rolled-back");
    assert.equal(rolled.body.rollback?.reason, "manual");
    assert.equal(rolled.body.rollback.restored, 2);
    for (const id of ids) assert.equal(await transportOf(gw, id), "http");
  });

  it("rolls back by hand, once (409 the second time), skipping a device changed by hand meanwhile", async () => {
    const ids = ["man-1", "man-2", "man-3"];
    await register(gw, ids, { transport: "http", httpTarget: device.url });
    const created = await startWave(gw, { ids, minRequests: 1_000_000 });
    const listed = (await admin<{ waves: WaveView[] }>(gw, "GET", "/admin/waves")).body.waves;
    assert.equal(listed[0]?.id, created.id, "newest first");
    assert.equal(listed[0].deviceIds, undefined, "without device lists");
    const summary = (await admin<{ waves: { watching: WaveView[] } }>(gw, "GET", "/admin/migration")).body;
    assert.deepEqual(
      summary.waves.watching.map((w) => w.id),
      [created.id],
    );

    assert.equal((await admin(gw, "PATCH", "/admin/devices/man-2", { transport: "shadow" })).status, 200);
    // Back on shadow but still in the watched wave: not in a second one.
    const again = await admin(gw, "POST", "/admin/waves", { ids: ["man-2"] });
    assert.equal(again.status, 409);
    assert.equal((again.body.error as { code: string }).code, "GW_CONFLICT");

    const rolled = await admin<WaveView>(gw, "POST", `/admin/waves/${created.id}/rollback`);
    assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
    assert.equal(rolled.body.state, "rolled-back");
    assert.equal(rolled.body.rollback?.reason, "manual");
    assert.equal(rolled.body.rollback.restored, 2);
    assert.deepEqual(rolled.body.rollback.skipped, ["man-2"]);
    assert.deepEqual(rolled.body.deviceIds, ids);
    assert.equal(await transportOf(gw, "man-1"), "http");
    assert.equal(await transportOf(gw, "man-2"), "shadow", "left as the operator set it");
    assert.equal(await transportOf(gw, "man-3"), "http");

    const second = await admin(gw, "POST", `/admin/waves/${created.id}/rollback`);
    assert.equal(second.status, 409);
    assert.equal((second.body.error as { code: string }).code, "GW_CONFLICT");
    assert.equal((await wave(gw, created.id)).rollback?.restored, 2, "the first rollback's record stays");
  });

  it("picks a percentage from 10,000 registry entries: deterministic, only http and shadow, a dry run changes nothing", async () => {
    const transportAt = (i: number) => (["xmpp", "http", "http", "shadow"] as const)[i % 4];
    const ids = Array.from({ length: 10_000 }, (_, i) => `fleet-${String(i).padStart(5, "0")}`);
    // Written fast: the registry's writes issued together share round trips (the client pipelines them).
    for (let i = 0; i < ids.length; i += 1000) {
      await Promise.all(
        ids
          .slice(i, i + 1000)
          .map((id, j) => gw.gateway.registry.upsert({ id, transport: transportAt(i + j) as "http", httpTarget: device.url })),
      );
    }
    const byTransport = async () =>
      (await admin<{ devices: { byTransport: Record<string, number> } }>(gw, "GET", "/admin/migration")).body.devices.byTransport;
    const wavesNow = async () => (await admin<{ waves: WaveView[] }>(gw, "GET", "/admin/waves")).body.waves.length;
    const [countsBefore, wavesBefore] = [await byTransport(), await wavesNow()];

    interface Plan {
      dryRun: boolean;
      devices: number;
      deviceIds: string[];
    }
    const plan = async (body: Record<string, unknown>) => {
      const answer = await admin<Plan>(gw, "POST", "/admin/waves", { ...body, dryRun: true });
      assert.equal(answer.status, 200, JSON.stringify(answer.body).slice(0, 300));
      assert.equal(answer.body.dryRun, true);
      return answer.body;
    };
    const tenth = await plan({ percent: 10, filter: { prefix: "fleet-" } });
    assert.equal(tenth.devices, 750, "10% of the 7,500 candidates");
    assert.equal(tenth.deviceIds.length, 750);
    for (const id of tenth.deviceIds) assert.notEqual(transportAt(Number(id.slice(6))), "xmpp", `${id} is a candidate`);
    assert.deepEqual((await plan({ percent: 10, filter: { prefix: "FLEET-" } })).deviceIds, tenth.deviceIds, "the same choice again");
    // Of the 100 blocks of 100 ids, most have some.
    const spread = new Set(tenth.deviceIds.map((id) => Math.floor(Number(id.slice(6)) / 100)));
    assert.ok(spread.size > 80, `spread over the fleet, not one end of it (${spread.size} blocks)`);
    assert.equal((await plan({ percent: 10, filter: { prefix: "fleet-", online: true } })).devices, 0, "no agent is online");
    assert.equal((await plan({ percent: 100, filter: { prefix: "fleet-0" } })).devices, 7500);
    assert.deepEqual(await byTransport(), countsBefore, "a dry run changes nothing");
    assert.equal(await wavesNow(), wavesBefore);

    const onePercent = await plan({ percent: 1, filter: { prefix: "fleet-" } });
    const created = await startWave(gw, { percent: 1, filter: { prefix: "fleet-" }, minRequests: 1_000_000 });
    assert.equal(created.devices, 75);
    assert.deepEqual(created.deviceIds, onePercent.deviceIds);
    for (const id of created.deviceIds ?? []) assert.equal(await transportOf(gw, id), "xmpp");
    const rolled = await admin<WaveView>(gw, "POST", `/admin/waves/${created.id}/rollback`);
    assert.equal(rolled.body.rollback?.restored, 75);
    assert.deepEqual(await byTransport(), countsBefore);
  });

  it("refuses bad requests naming the field, and unknown waves with 404", async () => {
    const cases: Array<[unknown, string]> = [
      ["{not json", "body"],
      [{}, "percent"],
      [{ percent: 150 }, "percent"],
      [{ ids: ["base-1"], percent: 5 }, "percent"],
      [{ ids: [] }, "ids"],
      [{ ids: ["nobody-here"] }, "ids"],
      [{ ids: ["good-1", "base-1", "base-1"] }, "ids"],
      [{ percent: 5, filter: { transport: "http" } }, "filter.transport"],
      [{ percent: 5, windowMs: 10 }, "windowMs"],
      [{ percent: 5, maxErrorRateIncrease: 2 }, "maxErrorRateIncrease"],
      [{ percent: 5, minRequests: 0 }, "minRequests"],
      [{ percent: 5, dryRun: 1 }, "dryRun"],
      [{ percent: 5, colour: "red" }, "colour"],
    ];
    for (const [body, field] of cases) {
      const answer = await admin<{ error: { code: string; field: string } }>(gw, "POST", "/admin/waves", body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.equal(answer.body.error.code, "GW_INVALID_FIELD");
      assert.equal(answer.body.error.field, field, JSON.stringify(body));
    }
    // An XMPP device is no candidate.
    await register(gw, ["on-xmpp"], { transport: "xmpp" });
    const xmpp = await admin<{ error: { field: string; message: string } }>(gw, "POST", "/admin/waves", { ids: ["on-xmpp"] });
    assert.equal(xmpp.status, 400);
    assert.match(xmpp.body.error.message, /on-xmpp is on xmpp/);
    for (const [method, path] of [
      ["GET", "/admin/waves/w999999"],
      ["GET", "/admin/waves/not-a-wave"],
      ["POST", "/admin/waves/w999999/rollback"],
      ["GET", "/admin/waves/w1/elsewhere"],
    ] as const) {
      const answer = await admin<{ error: { code: string } }>(gw, method, path);
      assert.equal(answer.status, 404, `${method} ${path}`);
      assert.equal(answer.body.error.code, "GW_NOT_FOUND");
    }
    const wrongMethod = await admin(gw, "DELETE", "/admin/waves");
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get("allow"), "GET, HEAD, POST");
    const noToken = await fetch(`${gw.url}/admin/waves`);
    assert.equal(noToken.status, 401);
    // Nothing was created by any of them.
    const rolledBackOnly = (await admin<{ waves: WaveView[] }>(gw, "GET", "/admin/waves")).body.waves;
    assert.ok(rolledBackOnly.every((w) => w.state !== "watching"));
  });

  describe("two instances sharing Redis", () => {
    let a: RunningGateway;
    let b: RunningGateway;

    before(async () => {
      // The suite's gateway is A; B shares its Redis keys, on Prosody's second component domain.
      const second = testComponents(2)[1] as { domain: string; secret: string };
      a = gw;
      b = teardown.stopLater(
        "gateway B",
        await startGateway(stack, {
          ...COMMON,
          REDIS_KEY_PREFIX: gw.config.redis.keyPrefix,
          GATEWAY_INSTANCE_ID: "b",
          XMPP_COMPONENT_DOMAIN: second.domain,
          XMPP_COMPONENT_SECRET: second.secret,
        }),
      );
    });

    it("adds up the counts of both instances and rolls back exactly once", async () => {
      const bad = ["pair-bad-1", "pair-bad-2", "pair-bad-3"];
      await register(a, bad, { transport: "http", httpTarget: device.url });
      await register(a, ["pair-base-1"], { transport: "http", httpTarget: device.url });
      const before = await Promise.all(
        [a, b].map((g) => scrapeMetric(g.url, "gateway_migration_wave_rollbacks_total", { reason: "threshold" })),
      );
      const rolledBackBefore = (await admin<{ waves: { rolledBack: number } }>(a, "GET", "/admin/migration")).body.waves.rolledBack;
      const created = await startWave(a, { ids: bad, minRequests: 30, windowMs: 600_000 });
      for (const id of [...bad, "pair-base-1"]) await registryChangeSeen([a, b], id);
      // B counts for the wave once it has learnt of it from Redis: its gauges for the wave appear.
      await pollUntil(
        "instance B watching the wave",
        async () => (await fetch(`${b.url}/metrics`).then((r) => r.text())).includes(`wave="${created.id}"`),
        { timeoutMs: EVENT_BOUND_MS },
      );
      // 20 failing wave requests and 10 baseline ones, half through each instance: below minRequests.
      for (const gateway of [a, b]) {
        for (let i = 0; i < 10; i++) assert.ok((await get(`${gateway.url}/devices/${bad[i % 3]}/reading`)) >= 500);
        for (let i = 0; i < 5; i++) assert.equal(await get(`${gateway.url}/devices/pair-base-1/reading`), 200);
      }
      const added = await pollUntil(
        "both instances' counts in Redis",
        async () => {
          const w = await wave(b, created.id);
          return w.observed.wave.requests === 20 && w.observed.baseline.requests === 10 ? w : undefined;
        },
        { timeoutMs: EVENT_BOUND_MS },
      );
      assert.equal(added.state, "watching");
      assert.equal(added.observed.wave.errors, 20);

      let n = 0;
      await driveUntil(
        "the wave rolled back",
        async () => {
          await get(`${(n % 2 === 0 ? a : b).url}/devices/${bad[n % 3]}/reading`);
          n++;
        },
        async () => (await wave(a, created.id)).state === "rolled-back",
      );
      const ended = await wave(b, created.id);
      assert.equal(ended.rollback?.reason, "threshold");
      assert.equal(ended.rollback.restored, 3, "every device restored by one rollback");
      assert.deepEqual(ended.rollback.skipped, []);
      assert.ok(ended.observed.wave.requests >= 30);
      for (const id of bad) assert.equal(await transportOf(b, id), "http");
      const rollbacks = await Promise.all(
        [a, b].map((g) => scrapeMetric(g.url, "gateway_migration_wave_rollbacks_total", { reason: "threshold" })),
      );
      const byA = rollbacks[0]! - before[0]!;
      const byB = rollbacks[1]! - before[1]!;
      assert.equal(byA + byB, 1, `exactly one instance rolled back (a: ${byA}, b: ${byB})`);
      const summary = (await admin<{ waves: { rolledBack: number; watching: unknown[] } }>(b, "GET", "/admin/migration")).body.waves;
      assert.equal(summary.rolledBack, rolledBackBefore + 1);
      assert.deepEqual(summary.watching, []);
    });

    it("lets one of two operators' rollbacks at once win; the other is 409", async () => {
      const ids = ["race-1", "race-2"];
      await register(a, ids, { transport: "http", httpTarget: device.url });
      const created = await startWave(a, { ids, minRequests: 1_000_000 });
      const answers = await Promise.all([a, b].map((g) => admin<WaveView>(g, "POST", `/admin/waves/${created.id}/rollback`)));
      assert.deepEqual(answers.map((x) => x.status).sort(), [200, 409]);
      const won = answers.find((x) => x.status === 200);
      assert.equal(won?.body.rollback?.restored, 2);
      assert.equal((await wave(b, created.id)).rollback?.restored, 2);
      for (const id of ids) assert.equal(await transportOf(a, id), "http");
    });
  });

  // Last: it empties Redis.
  it("answers 503 GW_STORE_UNAVAILABLE while Redis is down, and serves waves again once it is back", async () => {
    await stack.redis.kill();
    for (const [method, path, body] of [
      ["POST", "/admin/waves", { percent: 10 }],
      ["GET", "/admin/waves", undefined],
      ["GET", "/admin/waves/w1", undefined],
      ["POST", "/admin/waves/w1/rollback", undefined],
    ] as const) {
      const answer = await admin<{ error: { code: string } }>(gw, method, path, body);
      assert.equal(answer.status, 503, `${method} ${path}`);
      assert.equal(answer.body.error.code, "GW_STORE_UNAVAILABLE");
    }
    await stack.redis.restart();
    // An empty Redis: no wave, no device.
    const back = await pollUntil(
      "the admin API served again",
      async () => {
        const answer = await admin<{ waves: WaveView[] }>(gw, "GET", "/admin/waves");
        return answer.status === 200 ? answer.body : undefined;
      },
      { timeoutMs: EVENT_BOUND_MS },
    );
    assert.deepEqual(back.waves, []);
    const refused = await admin<{ error: { field: string } }>(gw, "POST", "/admin/waves", { ids: ["base-1"] });
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.field, "ids");
  });
});
