// The offline queue is bounded per device and in all, in entries and in bytes: asynchronous requests that do
// not fit end as 503 GW_DEVICE_OFFLINE (the 202 was already sent: the result at /requests/{id} says so), and
// a made-up device id (DEFAULT_TRANSPORT=xmpp gives any id a route) gets no queue at all. Registered devices
// that are offline still queue, and get their requests when they come online.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { RedisKeys } from "../../gateway/redis/keys.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const ADMIN_TOKEN = "queue-bounds-admin-token-01";
const PREFIX = `qb-${randomBytes(3).toString("hex")}:`;

interface ErrorBody {
  error: { code: string; message: string };
}

describe("offline queue bounds", { timeout: 120_000 }, () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let redis: Redis;
  const keys = new RedisKeys(PREFIX);

  async function register(id: string): Promise<void> {
    const r = await fetch(`${gw.url}/admin/devices/${id}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ transport: "xmpp" }),
    });
    assert.equal(r.status, 201);
  }

  /** Sends one asynchronous request and waits until it is queued, or ended; answers where its result is. */
  async function sendAsync(
    id: string,
    path: string,
    body: string,
    headers: Record<string, string> = {},
  ): Promise<{ location: string; state: string }> {
    const r = await fetch(`${gw.url}/devices/${id}/${path}`, { method: "POST", headers: { Prefer: "respond-async", ...headers }, body });
    assert.equal(r.status, 202);
    const location = r.headers.get("location") ?? "";
    const state = await pollUntil(
      `${id}/${path} queued or ended`,
      async () => {
        const x = await fetch(`${gw.url}${location}`);
        if (x.status !== 202) return "done";
        const s = ((await x.json()) as { status: string }).status;
        return s === "queued" ? s : undefined;
      },
      { timeoutMs: 10_000 },
    );
    return { location, state };
  }

  async function refusedAsOffline(location: string, because: RegExp): Promise<void> {
    const r = await fetch(`${gw.url}${location}`);
    assert.equal(r.status, 503);
    const body = (await r.json()) as ErrorBody;
    assert.equal(body.error.code, "GW_DEVICE_OFFLINE");
    assert.match(body.error.message, because);
  }

  const queueLength = (id: string) => redis.llen(keys.offlineQueue(`${id}@${stack.prosody.vhost}/agent`));

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater(
      "gateway",
      await startGateway(stack, {
        REDIS_KEY_PREFIX: PREFIX,
        GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
        DEFAULT_TRANSPORT: "xmpp",
        GATEWAY_QUEUE_MAX_PER_DEVICE: "3",
        GATEWAY_QUEUE_MAX_BYTES_PER_DEVICE: "8000",
        GATEWAY_QUEUE_MAX_TOTAL: "6",
      }),
    );
    redis = new Redis(stack.redis.url, { lazyConnect: true });
    await redis.connect();
    teardown.add("redis client", () => redis.quit());
    for (const id of ["qb-1", "qb-2", "qb-3", "qb-4"]) await register(id);
  });
  after(() => teardown.run());

  it("per device: the fourth request to a device with three queued is refused, the three stay", async () => {
    const sent = [];
    for (const n of [1, 2, 3, 4]) sent.push(await sendAsync("qb-1", `step${n}`, `s${n}`));
    assert.deepEqual(
      sent.map((s) => s.state),
      ["queued", "queued", "queued", "done"],
    );
    await refusedAsOffline(sent[3]?.location ?? "", /entries for this device/);
    assert.equal(await queueLength("qb-1"), 3);
  });

  it("per device, in bytes: a body that would take the device's queue over its bytes is refused", async () => {
    const big = "x".repeat(3000); // about 4 KB queued (base64 and the entry around it)
    const first = await sendAsync("qb-2", "a", big);
    const second = await sendAsync("qb-2", "b", big);
    assert.deepEqual([first.state, second.state], ["queued", "done"]);
    await refusedAsOffline(second.location, /bytes for this device/);
    assert.equal(await queueLength("qb-2"), 1);
  });

  it("in all: with six queued across devices, the next request to any device is refused; a freed key is not held", async () => {
    const a = await sendAsync("qb-3", "a", "a");
    const b = await sendAsync("qb-3", "b", "b");
    assert.deepEqual([a.state, b.state], ["queued", "queued"]);
    // With an Idempotency-Key: refused requests free it (the device was not reached), so a retry is a new try.
    const c = await sendAsync("qb-4", "c", "c", { "Idempotency-Key": "qb-key" });
    assert.equal(c.state, "done");
    await refusedAsOffline(c.location, /entries in all/);
    const retry = await sendAsync("qb-4", "c", "c", { "Idempotency-Key": "qb-key" });
    assert.equal(retry.state, "done");
    await refusedAsOffline(retry.location, /entries in all/);
    assert.equal(await queueLength("qb-4"), 0);
    assert.equal(await redis.zcard(keys.offlineQueuedTotal()), 6);
  });

  it("does not queue for a made-up device id that was never seen", async () => {
    const made = await sendAsync("never-heard-of", "x", "x");
    assert.equal(made.state, "done");
    await refusedAsOffline(made.location, /neither registered nor seen/);
    assert.equal(await queueLength("never-heard-of"), 0);
  });

  it("a registered device that comes online gets its queued requests, in order, and the room is given back", async () => {
    const seen: string[] = [];
    teardown.stopLater(
      "fleet",
      await startFleet(stack.prosody, ["qb-1"], (id) => (req, res) => {
        seen.push(req.url ?? "");
        res.end(`${id} answers ${req.url}`);
      }),
    );
    await pollUntil("delivered", () => seen.length === 3, { timeoutMs: 10_000 });
    assert.deepEqual(seen, ["/step1", "/step2", "/step3"]);
    await pollUntil("queue emptied", async () => (await queueLength("qb-1")) === 0, { timeoutMs: 10_000 });
    assert.equal(await redis.zcard(keys.offlineQueuedTotal()), 3, "the delivered entries left the total");
    // Room again in all: another device's request queues.
    const again = await sendAsync("qb-4", "d", "d");
    assert.equal(again.state, "queued");
  });
});
