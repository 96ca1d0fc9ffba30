// State every instance shares through Redis: presence, asynchronous requests and the offline queue,
// Idempotency-Key, and the per-device limit on requests in flight. Two gateway instances share one Redis
// key space; only A holds the component domain the devices serve (Prosody admits one connection per domain).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { startFleet, type Fleet } from "../helpers/fleet.js";
import { registryChangeSeen, startGateway, startTwoGateways, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack, testComponents } from "../helpers/stack.js";

interface ErrorBody {
  error: { code: string; message: string };
}

describe("state shared by instances", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let a: RunningGateway;
  let b: RunningGateway;
  const prefix = `shared-${randomBytes(3).toString("hex")}:`;
  const seen: string[] = [];
  const held: ServerResponse[] = [];
  let actuations = 0;

  // The device: `/hold` waits for the test; `/bulb` counts actuations; anything else answers its path.
  const device = (id: string) => (req: import("node:http").IncomingMessage, res: ServerResponse) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      seen.push(`${id} ${req.method} ${req.url}`);
      if (req.url === "/hold") held.push(res);
      else if (req.url === "/bulb") res.end(`actuation ${++actuations}: ${Buffer.concat(parts).toString()}`);
      else res.end(`${id} answers ${req.url}`);
    });
  };

  async function fleetOf(id: string): Promise<Fleet> {
    return teardown.stopLater(`fleet ${id}`, await startFleet(stack.prosody, [id], device));
  }

  /**
   * Another instance on the same key space that keeps queued requests `queueTtlS` only, on a component domain
   * of its own (`gw<component>.localhost`; Prosody admits one connection per domain).
   */
  async function queueingGateway(instanceId: string, component: number, queueTtlS: number): Promise<RunningGateway> {
    return teardown.stopLater(
      `gateway ${instanceId.toUpperCase()}`,
      await startGateway(stack, {
        REDIS_KEY_PREFIX: prefix,
        GATEWAY_QUEUE_TTL_S: String(queueTtlS),
        GATEWAY_INSTANCE_ID: instanceId,
        XMPP_COMPONENT_DOMAIN: `gw${component}.localhost`,
        XMPP_COMPONENT_SECRET: `s${component}`,
      }),
    );
  }

  /** The device came online once and signed off: `g` answers it 503 at once (the XMPP server bounces it). */
  async function knownOffline(g: RunningGateway, id: string): Promise<void> {
    await (await fleetOf(id)).stop();
    await pollUntil("known offline", async () => (await fetch(`${g.url}/devices/${id}/x`)).status === 503, { timeoutMs: 15_000 });
  }

  before(async () => {
    stack = teardown.stopLater(
      "stack",
      await startStack({
        prosody: {
          components: testComponents(4),
        },
      }),
    );
    // GATEWAY_DEVICE_QUEUE_MAX=0: a full device refuses at once (the waiting queue has its own file, device-burst).
    const common = { REDIS_KEY_PREFIX: prefix, GATEWAY_QUEUE_TTL_S: "20", GATEWAY_DEVICE_QUEUE_MAX: "0" };
    [a, b] = await startTwoGateways(stack, teardown, common);
  });
  after(() => teardown.run());

  it("tracks presence in Redis, seen by every instance: online while the agent is there, offline after it signs off", async () => {
    const fleet = await fleetOf("pres-dev");
    const online = async (g: RunningGateway) => (await g.gateway.metrics.devicesOnline.get()).values[0]?.value;
    await pollUntil("online", async () => (await online(a)) === 1 && (await online(b)) === 1, { timeoutMs: 15_000 });
    await fleet.stop();
    await pollUntil("offline", async () => (await online(b)) === 0, { timeoutMs: 15_000 });
    // The XMPP server bounces the request at once: 503 with Retry-After, no waiting for the deadline.
    const r = await fetch(`${a.url}/devices/pres-dev/x`, { signal: AbortSignal.timeout(15_000) }); // well short of the 30 s deadline
    assert.equal(r.status, 503);
    assert.equal(((await r.json()) as ErrorBody).error.code, "GW_DEVICE_OFFLINE");
    assert.ok(Number(r.headers.get("retry-after")) > 0);
  });

  it("answers Prefer: respond-async with 202, and any instance reports the result", async () => {
    await fleetOf("async-dev");
    const accepted = await fetch(`${a.url}/devices/async-dev/reading`, { headers: { Prefer: "respond-async, wait=10" } });
    assert.equal(accepted.status, 202);
    assert.equal(accepted.headers.get("preference-applied"), "respond-async");
    const location = accepted.headers.get("location") ?? "";
    assert.match(location, /^\/requests\/[A-Za-z0-9_-]+$/);
    const done = await pollUntil(
      "result stored",
      async () => {
        const r = await fetch(`${b.url}${location}`);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 10_000 },
    );
    assert.equal(await done.text(), "async-dev answers /reading");
    assert.equal((await fetch(`${b.url}/requests/never-issued`)).status, 404);
  });

  it("queues asynchronous requests for an offline device and delivers them in order when it returns", async () => {
    const first = await fleetOf("queue-dev");
    await first.stop(); // it signs off
    await pollUntil("offline", async () => (await fetch(`${a.url}/devices/queue-dev/x`)).status === 503, { timeoutMs: 15_000 });
    const ids: string[] = [];
    for (const n of [1, 2, 3]) {
      // Through A, which holds the component: the XMPP server bounces the request, so it is queued.
      const r = await fetch(`${a.url}/devices/queue-dev/step${n}`, { method: "POST", headers: { Prefer: "respond-async" }, body: `s${n}` });
      assert.equal(r.status, 202);
      assert.equal(((await r.json()) as { status: string }).status, "pending");
      const location = r.headers.get("location") ?? "";
      await pollUntil(
        "queued",
        async () => ((await (await fetch(`${b.url}${location}`)).json()) as { status?: string }).status === "queued",
        { timeoutMs: 15_000 },
      );
      ids.push(location);
    }
    await fleetOf("queue-dev"); // back online: its presence triggers delivery
    for (const [i, location] of ids.entries()) {
      const r = await pollUntil(
        "delivered",
        async () => {
          const x = await fetch(`${a.url}${location}`);
          return x.status === 200 ? x : undefined;
        },
        { timeoutMs: 10_000 },
      );
      assert.equal(await r.text(), `queue-dev answers /step${i + 1}`);
    }
    const order = seen.filter((s) => s.startsWith("queue-dev POST"));
    assert.deepEqual(order, ["queue-dev POST /step1", "queue-dev POST /step2", "queue-dev POST /step3"]);
  });

  it("expires a queued request whose device never returns: 504 GW_DEVICE_TIMEOUT", async () => {
    // C shares the key space, but keeps queued requests for one second only.
    const c = await queueingGateway("c", 3, 1);
    await knownOffline(c, "gone-dev");
    const accepted = await fetch(`${c.url}/devices/gone-dev/x`, { headers: { Prefer: "respond-async" } });
    assert.equal(accepted.status, 202);
    const expired = await pollUntil(
      "expired",
      async () => {
        const r = await fetch(`${a.url}${accepted.headers.get("location")}`);
        return r.status === 202 ? undefined : r;
      },
      { timeoutMs: 10_000, intervalMs: 200 },
    );
    assert.equal(expired.status, 504);
    assert.equal(((await expired.json()) as ErrorBody).error.code, "GW_DEVICE_TIMEOUT");
  });

  it("keeps a queued request pending while its delivery outlives the queue's deadline: its result is the reply, never 504 first", async () => {
    // D queues for QUEUE_TTL_S only; A, which the device announces itself to, delivers it and the device holds
    // it past that deadline (plus the 1 s grace of an expiry). The request is still under way: it must not read
    // as expired meanwhile, then as the reply once the device answers.
    const QUEUE_TTL_S = 4;
    const d = await queueingGateway("d", 4, QUEUE_TTL_S);
    await knownOffline(d, "late-dev");
    const accepted = await fetch(`${d.url}/devices/late-dev/hold`, { method: "POST", headers: { Prefer: "respond-async" }, body: "late" });
    const queuedAt = Date.now();
    assert.equal(accepted.status, 202);
    const location = accepted.headers.get("location") ?? "";
    const status = async (g: RunningGateway) => (await fetch(`${g.url}${location}`)).status;
    await pollUntil(
      "queued",
      async () => ((await (await fetch(`${b.url}${location}`)).json()) as { status?: string }).status === "queued",
      {
        timeoutMs: 15_000,
      },
    );
    await fleetOf("late-dev");
    await pollUntil("delivered, and held by the device", () => held.length === 1, { timeoutMs: 15_000 });
    // Past the queue's deadline and the grace of an expiry: the state a reader got here before was 504.
    await new Promise((r) => setTimeout(r, Math.max(0, queuedAt + QUEUE_TTL_S * 1000 + 1500 - Date.now())));
    assert.deepEqual([await status(b), await status(d)], [202, 202], "still under way: not expired");
    held.shift()?.end("late reply");
    const done = await pollUntil(
      "answered",
      async () => {
        const r = await fetch(`${b.url}${location}`);
        return r.status === 202 ? undefined : r;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    assert.equal(done.status, 200);
    assert.equal(await done.text(), "late reply");
    assert.equal(await (await fetch(`${a.url}${location}`)).text(), "late reply");
  });

  it("answers a retried actuation with the stored outcome, reaching the device once", async () => {
    await fleetOf("bulb-dev");
    const send = (url: string, body: string, key = "k-1") =>
      fetch(`${url}/devices/bulb-dev/bulb`, { method: "POST", headers: { "Idempotency-Key": key }, body });
    const first = await send(a.url, "on");
    assert.equal(await first.text(), "actuation 1: on");
    const retry = await send(b.url, "on");
    assert.equal(retry.status, 200);
    assert.equal(await retry.text(), "actuation 1: on", "a retry must not actuate again");
    const other = await send(a.url, "off");
    assert.equal(other.status, 422);
    assert.equal(((await other.json()) as ErrorBody).error.code, "GW_IDEMPOTENCY_MISMATCH");
    assert.equal(await (await send(a.url, "off", "k-2")).text(), "actuation 2: off", "a new key actuates");
    assert.equal(actuations, 2);
  });

  it("answers 409 while the first request with a key is still running", async () => {
    await fleetOf("hold-dev");
    const first = fetch(`${a.url}/devices/hold-dev/hold`, { method: "PUT", headers: { "Idempotency-Key": "h-1" }, body: "x" });
    await pollUntil("held", () => held.length === 1, { timeoutMs: 15_000 });
    const retry = await fetch(`${b.url}/devices/hold-dev/hold`, { method: "PUT", headers: { "Idempotency-Key": "h-1" }, body: "x" });
    assert.equal(retry.status, 409);
    assert.equal(((await retry.json()) as ErrorBody).error.code, "GW_IDEMPOTENCY_IN_FLIGHT");
    held.shift()?.end("done");
    assert.equal(await (await first).text(), "done");
  });

  it("limits a device's requests in flight across instances: 429 GW_DEVICE_BUSY with Retry-After", async () => {
    await fleetOf("busy-dev");
    await a.gateway.registry.put({ id: "busy-dev", transport: "xmpp", maxInFlight: 1 });
    await registryChangeSeen([b], "busy-dev");
    const first = fetch(`${a.url}/devices/busy-dev/hold`);
    await pollUntil("held", () => held.length === 1, { timeoutMs: 15_000 });
    const second = await fetch(`${b.url}/devices/busy-dev/other`);
    assert.equal(second.status, 429);
    assert.equal(((await second.json()) as ErrorBody).error.code, "GW_DEVICE_BUSY");
    assert.ok(Number(second.headers.get("retry-after")) >= 1);
    held.shift()?.end("released");
    assert.equal(await (await first).text(), "released");
    assert.equal(await (await fetch(`${a.url}/devices/busy-dev/after`)).text(), "busy-dev answers /after", "the slot was given back");
  });
});
