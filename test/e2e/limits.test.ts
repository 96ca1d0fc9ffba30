// Limits and fairness across two instances sharing Redis: the instance's in-flight ceiling (503
// GW_OVERLOADED, never reaching the device) and the per-client rate limit (429 GW_RATE_LIMITED), shared by
// the instances, so one noisy client cannot use up what the others are owed.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { registryChangeSeen, startTwoGateways, type RunningGateway } from "../helpers/gateway.js";
import { startDeviceServer, type DeviceServer } from "../helpers/http-device.js";
import { startStack, Teardown, type Stack, testComponents } from "../helpers/stack.js";

const ADMIN_TOKEN = "limits-admin-token-0123456";

interface ErrorBody {
  error: { code: string };
}

/** A device that holds every request until the test lets them go. */
function heldDevice() {
  const waiting: ServerResponse[] = [];
  let seen = 0;
  return {
    handler: (_req: IncomingMessage, res: ServerResponse) => {
      seen++;
      waiting.push(res);
    },
    get seen() {
      return seen;
    },
    get waiting() {
      return waiting.length;
    },
    releaseAll() {
      for (const res of waiting.splice(0)) res.end("released");
    },
  };
}

describe("limits and fairness", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let a: RunningGateway;
  let b: RunningGateway;
  const held = heldDevice();
  let quickHits = new Map<string, number>();

  async function register(id: string, device: DeviceServer): Promise<void> {
    const r = await fetch(`${a.url}/admin/devices/${id}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ transport: "http", httpTarget: device.url }),
    });
    assert.equal(r.status, 201);
    await registryChangeSeen([b], id);
  }

  const get = (g: RunningGateway, path: string, tenant: string, signal?: AbortSignal) =>
    fetch(`${g.url}${path}`, { headers: { "X-Tenant": tenant }, ...(signal ? { signal } : {}) });
  const tenant = () => `t-${randomBytes(4).toString("hex")}`;
  const refusals = async (g: RunningGateway, reason: string) =>
    (await g.gateway.metrics.admissionRefusals.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

  before(async () => {
    stack = teardown.stopLater(
      "stack",
      await startStack({
        prosody: {
          components: testComponents(2),
        },
      }),
    );
    const common = {
      REDIS_KEY_PREFIX: `limits-${randomBytes(3).toString("hex")}:`,
      GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
      GATEWAY_MAX_IN_FLIGHT: "3",
      // 4 at once, then one more per hour: nothing refills while the test runs, however slow the machine.
      GATEWAY_CLIENT_RATE_LIMIT: "1",
      GATEWAY_CLIENT_RATE_WINDOW_S: "3600",
      GATEWAY_CLIENT_RATE_BURST: "4",
      GATEWAY_CLIENT_KEY: "header:X-Tenant",
    };
    [a, b] = await startTwoGateways(stack, teardown, common);
    const slow = teardown.stopLater("held device", await startDeviceServer(held.handler));
    const quick = teardown.stopLater(
      "quick device",
      await startDeviceServer((req, res) => {
        const who = String(req.headers["x-tenant"]);
        quickHits.set(who, (quickHits.get(who) ?? 0) + 1);
        res.end("ok");
      }),
    );
    await register("held", slow);
    await register("quick", quick);
  });
  after(async () => {
    held.releaseAll();
    await teardown.run();
  });

  it("refuses a request beyond the instance's in-flight ceiling with 503 GW_OVERLOADED, before it reaches the device", async () => {
    const inFlight = [get(a, "/devices/held/x", tenant()), get(a, "/devices/held/x", tenant()), get(a, "/devices/held/x", tenant())];
    await pollUntil("three requests held by the device", () => held.waiting === 3, { timeoutMs: 15_000 });
    assert.equal((await a.gateway.metrics.requestsInFlight.get()).values[0]?.value, 3, "gateway_requests_inflight");
    const connections = (await a.gateway.metrics.proxyConnections.get()).values;
    assert.equal(connections.find((v) => v.labels.state === "active")?.value, 3, "gateway_proxy_connections{state=active}");
    const refused = await get(a, "/devices/quick/x", tenant());
    assert.equal(refused.status, 503);
    assert.equal(((await refused.json()) as ErrorBody).error.code, "GW_OVERLOADED");
    assert.equal(refused.headers.get("retry-after"), "1");
    assert.equal(
      [...quickHits.values()].reduce((x, y) => x + y, 0),
      0,
      "the refused request reached no device",
    );
    assert.equal(await refusals(a, "overloaded"), 1);
    // The ceiling is per instance: B still serves.
    assert.equal((await get(b, "/devices/quick/x", tenant())).status, 200);

    held.releaseAll();
    for (const r of await Promise.all(inFlight)) assert.deepEqual([r.status, await r.text()], [200, "released"]);
    await pollUntil("places given back", async () => (await get(a, "/devices/quick/x", tenant())).status === 200, { timeoutMs: 15_000 });
  });

  it("gives a place back when its client goes away", async () => {
    const quit = new AbortController();
    const stay = [get(a, "/devices/held/y", tenant()), get(a, "/devices/held/y", tenant())];
    const leaving = get(a, "/devices/held/y", tenant(), quit.signal).catch(() => "aborted");
    await pollUntil("three requests held", () => held.waiting === 3, { timeoutMs: 15_000 });
    quit.abort();
    assert.equal(await leaving, "aborted");
    await pollUntil("the aborted request's place is free", async () => (await get(a, "/devices/quick/y", tenant())).status === 200, {
      timeoutMs: 15_000,
    });
    held.releaseAll();
    await Promise.all(stay);
  });

  it("limits each client's rate across both instances with 429 GW_RATE_LIMITED, and the others are still served", async () => {
    quickHits = new Map();
    const before = (await refusals(a, "rate_limited")) + (await refusals(b, "rate_limited"));
    const noisy = tenant();
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const r = await get(i % 2 === 0 ? a : b, "/devices/quick/z", noisy);
      statuses.push(r.status);
      if (r.status === 429) {
        assert.equal(((await r.json()) as ErrorBody).error.code, "GW_RATE_LIMITED");
        assert.ok(Number(r.headers.get("retry-after")) >= 1, "Retry-After says when");
      } else await r.text();
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 429, 429, 429], "the burst of 4 is shared by the two instances");
    assert.equal(quickHits.get(noisy), 4, "refused requests never reached the device");
    const quiet = tenant();
    assert.equal((await get(b, "/devices/quick/z", quiet)).status, 200, "another client is not starved by the noisy one");
    assert.equal((await refusals(a, "rate_limited")) + (await refusals(b, "rate_limited")) - before, 3);
  });

  it("does not rate-limit the gateway's own endpoints", async () => {
    const noisy = tenant();
    for (let i = 0; i < 4; i++) await (await get(a, "/devices/quick/w", noisy)).text();
    assert.equal((await get(a, "/devices/quick/w", noisy)).status, 429);
    for (const path of ["/healthz", "/readyz", "/metrics"]) assert.equal((await get(a, path, noisy)).status, 200, path);
  });
});
