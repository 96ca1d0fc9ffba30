// Outages of the gateway's dependencies: Redis and Prosody taken away and brought back, idle and under a bounded
// load. The gateway must answer every request in time with its own reply or a catalogue error, never hang and
// never mix replies up, and recover by itself (no gateway restart) once the dependency is back.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { setTimeout as pause } from "node:timers/promises";
import { after, before, describe, it, type TestContext } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { CATALOGUE, type ErrorCode } from "../../gateway/errors.js";
import { echoDevice, type EchoReport } from "../helpers/echo-device.js";
import { startFleet, type Fleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const DEVICES = ["out-0", "out-1", "out-2", "out-3"];
/** Every request asks the gateway for a 3 s deadline; a client that waited 10 s past it calls it a hang. */
const GATEWAY_TIMEOUT_MS = 3000;
/** How much longer than the gateway's deadline a client waits: a bound for a loaded machine, not a duration. */
const CLIENT_GRACE_MS = 10_000;
const CLIENT_TIMEOUT_MS = GATEWAY_TIMEOUT_MS + CLIENT_GRACE_MS;
/**
 * The gateway's Redis command timeout and the deadline of the request that checks "at once": an answer that
 * waited for either would come this late, so anything earlier was answered without waiting for a timer.
 */
const NO_TIMER_MS = 20_000;
/** Bounds for the stack to come back after an outage (Redis reconnects with a backoff of up to 5 s). */
const RECOVERY_BOUND_MS = 30_000;
/** After a fast error, a load loop waits this long before its next request, as a retrying client would. */
const RETRY_PACE_MS = 20;

interface Answer {
  status: number;
  text: string;
  headers: Headers;
  ms: number;
}

/** One request with the gateway deadline header and the client's own bound; a hang rejects with TimeoutError. */
async function call(url: string, init: RequestInit = {}, deadlineMs = GATEWAY_TIMEOUT_MS): Promise<Answer> {
  const started = Date.now();
  const headers = new Headers(init.headers);
  headers.set("X-Gateway-Timeout", String(deadlineMs));
  const res = await fetch(url, { ...init, headers, signal: AbortSignal.timeout(deadlineMs + CLIENT_GRACE_MS) });
  const text = await res.text();
  return { status: res.status, text, headers: res.headers, ms: Date.now() - started };
}

function errorCodeOf(a: Answer): string | undefined {
  try {
    return (JSON.parse(a.text) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

function isCatalogued(code: string | undefined): code is ErrorCode {
  return code !== undefined && Object.hasOwn(CATALOGUE, code);
}

/** How one load request ended: its own reply, a catalogue error, or something that must never happen. */
type Outcome = { kind: "ok" } | { kind: "error"; code: ErrorCode; status: number } | { kind: "bad"; why: string };

function outcomeKey(o: Outcome): string {
  if (o.kind === "ok") return "200 own reply";
  if (o.kind === "error") return `${o.status} ${o.code}`;
  return `BAD ${o.why.split(":")[0] ?? o.why}`;
}

async function loadRequest(base: string, device: string, token: string): Promise<Outcome> {
  let a: Answer;
  try {
    a = await call(`${base}/devices/${device}/load?token=${token}`);
  } catch (err) {
    const name = (err as Error).name;
    if (name === "TimeoutError") return { kind: "bad", why: `hang: no answer within ${CLIENT_TIMEOUT_MS} ms` };
    return { kind: "bad", why: `transport: ${name}: ${(err as Error).message}` };
  }
  if (a.status === 200) {
    let report: EchoReport;
    try {
      report = JSON.parse(a.text) as EchoReport;
    } catch {
      return { kind: "bad", why: `non-JSON 200: ${a.text.slice(0, 200)}` };
    }
    if (report.device !== device || report.url !== `/load?token=${token}`) {
      return { kind: "bad", why: `foreign reply: asked ${device} /load?token=${token}, got ${report.device} ${report.url}` };
    }
    return { kind: "ok" };
  }
  const code = errorCodeOf(a);
  if (!isCatalogued(code)) return { kind: "bad", why: `uncatalogued: ${a.status} ${a.text.slice(0, 200)}` };
  // GW_INTERNAL is in the catalogue, but it means a gateway bug: an outage must map to a named error.
  if (a.status < 500 || code === "GW_INTERNAL")
    return { kind: "bad", why: `unexpected error: ${a.status} ${code} ${a.text.slice(0, 200)}` };
  if (code !== "GW_DEVICE_ERROR" && CATALOGUE[code].status !== a.status)
    return { kind: "bad", why: `wrong status: ${a.status} for ${code}` };
  return { kind: "error", code, status: a.status };
}

interface LoadResult {
  loop: number;
  startedAt: number;
  outcome: Outcome;
}

/** One client loop per device, each request with a unique token that its reply must carry back. */
class SteadyLoad {
  readonly results: LoadResult[] = [];
  private stopped = false;
  private readonly loops: Array<Promise<void>>;
  private readonly abort = new AbortController();

  constructor(private readonly base: string) {
    this.loops = DEVICES.map((device, i) => this.loop(i, device));
  }

  private async loop(i: number, device: string): Promise<void> {
    for (let n = 0; !this.stopped; n++) {
      const token = `L${i}-${n}-${randomBytes(6).toString("hex")}`;
      const startedAt = Date.now();
      const outcome = await loadRequest(this.base, device, token);
      this.results.push({ loop: i, startedAt, outcome });
      if (outcome.kind !== "ok" && !this.stopped)
        await pause(RETRY_PACE_MS, undefined, { signal: this.abort.signal }).catch(() => undefined);
    }
  }

  /** Requests of loop `i` that match. */
  count(i: number, pred: (r: LoadResult) => boolean): number {
    return this.results.filter((r) => r.loop === i && pred(r)).length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await Promise.all(this.loops);
  }

  counts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const r of this.results) {
      const k = outcomeKey(r.outcome);
      counts[k] = (counts[k] ?? 0) + 1;
    }
    return counts;
  }
}

describe("dependency outages: Redis and Prosody go away and come back", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let fleet: Fleet;

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater("gateway", await startGateway(stack, { REDIS_COMMAND_TIMEOUT_MS: String(NO_TIMER_MS) }));
    fleet = teardown.stopLater("fleet", await startFleet(stack.prosody, DEVICES, (id) => echoDevice(id)));
  });
  after(() => teardown.run());

  async function readiness(): Promise<{ status: number; checks: Record<string, boolean> }> {
    const a = await call(`${gw.url}/readyz`);
    return { status: a.status, checks: (JSON.parse(a.text) as { checks: Record<string, boolean> }).checks };
  }

  /** What the last probe of each device got, for failure messages. */
  let lastProbe: string[] = [];

  /** True once one fresh request to every device comes back 200 with its own token. */
  async function allDevicesServe(): Promise<boolean> {
    const outcomes = await Promise.all(DEVICES.map((d) => loadRequest(gw.url, d, `probe-${randomBytes(6).toString("hex")}`)));
    lastProbe = outcomes.map((o, i) => `${DEVICES[i]}: ${o.kind === "bad" ? o.why : outcomeKey(o)}`);
    return outcomes.every((o) => o.kind === "ok");
  }

  async function waitRecovered(what: string, timeoutMs: number): Promise<number> {
    const started = Date.now();
    try {
      await pollUntil(`${what}: every device served again`, allDevicesServe, { timeoutMs, intervalMs: 100 });
    } catch (err) {
      const r = await readiness().catch(() => undefined);
      const agents = fleet.devices.map((d) => `${d.id}:${d.agent.online ? "online" : "offline"}`).join(" ");
      const connected = r?.status === 200 && fleet.devices.every((d) => d.agent.online);
      const hint =
        connected && lastProbe.some((p) => p.includes("GW_DEVICE_OFFLINE"))
          ? " (every agent and the component are connected, yet the gateway still calls devices offline)"
          : "";
      throw new Error(
        `${(err as Error).message}${hint}; last probes: ${lastProbe.join("; ")}; readyz ${JSON.stringify(r)}; agents ${agents}`,
        { cause: err },
      );
    }
    await pollUntil(`${what}: gateway ready again`, async () => (await readiness()).status === 200, {
      timeoutMs: RECOVERY_BOUND_MS,
      intervalMs: 50,
    });
    return Date.now() - started;
  }

  async function expectStoreUnavailable(
    label: string,
    url: string,
    init: RequestInit = {},
    deadlineMs = GATEWAY_TIMEOUT_MS,
  ): Promise<Answer> {
    let a: Answer;
    try {
      a = await call(url, init, deadlineMs);
    } catch (err) {
      assert.fail(`${label}: no answer within ${deadlineMs + CLIENT_GRACE_MS} ms while Redis is down (${(err as Error).name})`);
    }
    const code = errorCodeOf(a);
    assert.notEqual(code, "GW_DEVICE_TIMEOUT", `${label}: Redis down must not read as a device timeout`);
    assert.equal(a.status, 503, `${label}: ${a.status} ${a.text}`);
    assert.equal(code, "GW_STORE_UNAVAILABLE", `${label}: ${a.text}`);
    assert.match(a.headers.get("content-type") ?? "", /^application\/json/, label);
    assert.ok(a.headers.get("x-request-id"), `${label}: X-Request-Id missing`);
    return a;
  }

  async function redisDown(): Promise<void> {
    await stack.redis.kill();
    await pollUntil("the gateway to see Redis gone", async () => (await readiness()).checks.redis === false, {
      timeoutMs: 15_000,
      intervalMs: 20,
    });
  }

  /**
   * Runs the steady load, disrupts a dependency once the load is flowing, waits for recovery, keeps the load
   * going a little after it, then checks every outcome and reports the counts.
   */
  async function underLoad(t: TestContext, label: string, disrupt: () => Promise<void>, recoveryBoundMs: number): Promise<void> {
    assert.ok(await allDevicesServe(), `${label}: the stack is not healthy before the outage`);
    const load = new SteadyLoad(gw.url);
    let recoveredAt = 0;
    let downMs = 0;
    let recovery = "not recovered";
    try {
      await pollUntil(`${label}: steady load`, () => DEVICES.every((_, i) => load.count(i, (r) => r.outcome.kind === "ok") >= 5), {
        timeoutMs: 30_000,
      });
      const disruptedAt = Date.now();
      await disrupt();
      downMs = Date.now() - disruptedAt;
      recovery = `recovered ${await waitRecovered(label, recoveryBoundMs)} ms after it`;
      recoveredAt = Date.now();
      await pollUntil(
        `${label}: load after recovery`,
        () => DEVICES.every((_, i) => load.count(i, (r) => r.startedAt >= recoveredAt) >= 10),
        { timeoutMs: 30_000 },
      );
    } finally {
      await load.stop();
      t.diagnostic(`${label}: ${load.results.length} requests; disruption ${downMs} ms, ${recovery}; ${JSON.stringify(load.counts())}`);
    }

    const bad = load.results.filter((r) => r.outcome.kind === "bad");
    assert.deepEqual(
      bad.slice(0, 10).map((r) => (r.outcome as { why: string }).why),
      [],
      `${label}: ${bad.length} requests broke the contract`,
    );
    const lateFailures = load.results.filter((r) => r.startedAt >= recoveredAt && r.outcome.kind !== "ok");
    assert.deepEqual(
      lateFailures.slice(0, 10).map((r) => outcomeKey(r.outcome)),
      [],
      `${label}: requests failed after recovery`,
    );
    await pollUntil(`${label}: no exchange left pending`, () => gw.gateway.pending.size === 0, {
      timeoutMs: GATEWAY_TIMEOUT_MS + CLIENT_GRACE_MS,
    });
  }

  it("Redis down while idle: 503 GW_STORE_UNAVAILABLE at once, unready but alive; serves again once Redis is back", async (t) => {
    assert.ok(await allDevicesServe(), "the stack is not healthy before the outage");
    await redisDown();

    // A deadline and a Redis command timeout of NO_TIMER_MS: an answer before then waited for no timer.
    const a = await expectStoreUnavailable("device request", `${gw.url}/devices/out-0/TEMPERATURE`, {}, NO_TIMER_MS);
    assert.ok(a.ms < NO_TIMER_MS, `answered after ${a.ms} ms: a Redis outage must be answered at once, not at a timeout`);
    assert.equal((JSON.parse(a.text) as { error: { deviceId?: string } }).error.deviceId, "out-0");

    const ready = await readiness();
    assert.equal(ready.status, 503);
    assert.deepEqual(ready.checks, { redis: false, xmpp: true, accepting: true });
    assert.equal((await call(`${gw.url}/healthz`)).status, 200, "the process must stay alive");

    await stack.redis.restart();
    const recoveryMs = await waitRecovered("Redis back", RECOVERY_BOUND_MS);
    t.diagnostic(`503 in ${a.ms} ms while down; served again ${recoveryMs} ms after Redis restarted`);
    assert.deepEqual((await readiness()).checks, { redis: true, xmpp: true, accepting: true });
  });

  it("Redis down: asynchronous, idempotent and result requests answer 503 GW_STORE_UNAVAILABLE too, not 500", async () => {
    assert.ok(await allDevicesServe(), "the stack is not healthy before the outage");
    await redisDown();

    await expectStoreUnavailable("Prefer: respond-async", `${gw.url}/devices/out-1/BULB/ON`, {
      method: "POST",
      headers: { Prefer: "respond-async" },
      body: "on",
    });
    const key = `k-${randomBytes(6).toString("hex")}`;
    await expectStoreUnavailable("Idempotency-Key", `${gw.url}/devices/out-1/BULB/ON`, {
      method: "POST",
      headers: { "Idempotency-Key": key },
      body: "on",
    });
    await expectStoreUnavailable("GET /requests/x", `${gw.url}/requests/x`);

    await stack.redis.restart();
    await waitRecovered("Redis back", RECOVERY_BOUND_MS);
    // Nothing of the refused requests stuck: the same key runs now, and an asynchronous request completes.
    const idem = await call(`${gw.url}/devices/out-1/BULB/ON`, { method: "POST", headers: { "Idempotency-Key": key }, body: "on" });
    assert.equal(idem.status, 200, `idempotent request after recovery: ${idem.text}`);
    assert.equal((JSON.parse(idem.text) as EchoReport).url, "/BULB/ON");
    const accepted = await call(`${gw.url}/devices/out-1/async-after`, { headers: { Prefer: "respond-async" } });
    assert.equal(accepted.status, 202, accepted.text);
    const location = accepted.headers.get("location") ?? "";
    assert.match(location, /^\/requests\//);
    const done = await pollUntil(
      "the asynchronous result",
      async () => {
        const r = await call(`${gw.url}${location}`);
        return r.status === 202 ? undefined : r;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.equal(done.status, 200, done.text);
    assert.equal((JSON.parse(done.text) as EchoReport).url, "/async-after");
  });

  it("Redis restarted under load: own reply or catalogue error, no hang; all succeed after recovery", async (t) => {
    await underLoad(t, "redis restart", () => stack.redis.restart(), RECOVERY_BOUND_MS);
  });

  it("Prosody killed (SIGKILL) under load, then started again", async (t) => {
    await underLoad(
      t,
      "prosody kill",
      async () => {
        await stack.prosody.kill();
        await pollUntil("the gateway to see the component gone", async () => (await readiness()).checks.xmpp === false, {
          timeoutMs: 15_000,
          intervalMs: 20,
        });
        await stack.prosody.restart();
      },
      RECOVERY_BOUND_MS,
    );
    assert.ok(
      fleet.devices.every((d) => d.agent.online),
      "every agent is back online",
    );
  });

  // Last: a graceful stop makes Prosody tell the gateway that every agent signed off, so the tests after this one
  // would depend on the gateway having learnt that they are back.
  it("Prosody restarted under load: component and agents reconnect by themselves", async (t) => {
    await underLoad(
      t,
      "prosody restart",
      async () => {
        await stack.prosody.restart();
      },
      RECOVERY_BOUND_MS,
    );
    assert.ok(
      fleet.devices.every((d) => d.agent.online),
      "every agent is back online",
    );
    assert.ok(gw.gateway.component.online, "the component is back online");
  });
});
