// Nothing is lost: a bounded, mixed load (every method, some `Prefer: respond-async`, some unsafe requests with
// an `Idempotency-Key`) goes to ten devices through HAProxy in front of two gateway PROCESSES, while, in turn,
// the serving gateway instance is SIGKILLed and restarted, Redis is SIGKILLed and restarted with its data, and
// Prosody is SIGKILLed and restarted on the same ports. Afterwards the test checks, and prints, that:
//   - every request got exactly one answer: its own device's reply (each request carries a token of its own,
//     which the device echoes in headers and body: a reply can never be credited to another request) or a
//     catalogue error (JSON, a code of gateway/errors.ts, its status);
//   - no actuation with an Idempotency-Key reached its device twice (each device counts actuations per key),
//     and, after the chaos, sending every keyed request once more returns its stored outcome from either
//     instance, without reaching the device;
//   - every accepted asynchronous request (202 + Location) ends as a result readable at GET /requests/{id} from
//     both instances, the same on both: the device's reply, or the error it ended with (504 GW_DEVICE_TIMEOUT
//     when it expired, README "Asynchronous requests"); never 404 and never pending forever.
//
// Redis runs persistent (append-only file, fsync on every write: startRedis({ persistent: true })): the
// guarantees for asynchronous results and Idempotency-Keys across a Redis restart ASSUME that persistence. A
// Redis without it comes back empty, and with it every result and key written before the crash.
//
// Topology: Prosody with its default `component_conflict_resolve = "kick_new"` admits one component connection
// per domain, so one instance serves and the other waits as a hot standby, unready (README "Running several
// instances"); HAProxy health-checks /readyz and sends the load to whichever instance is ready. Killing the
// serving instance hands the service over to the other (or to the restarted one, whichever connects first).
// Both instances answer GET /requests/{id} and Idempotency-Key replays (state in Redis), and the test sends
// those to each of them directly.
//
// How the client treats a failure (retries, "ambiguous", "lost"): test/helpers/ledger/client.ts.
// Some keyed requests are also sent a second time right after their answer (a client that lost it), to one
// instance or the other directly.
//
// The figures (requests, device replies, errors by code, duplicates, lost, ambiguous) are printed at the end,
// lines starting with "nothing-lost |". A key that stays 409 GW_IDEMPOTENCY_IN_FLIGHT after its request is over
// counts as lost: a request whose outcome was never recorded (its instance killed, Redis away at that moment)
// must answer, after its deadline, with the kept "outcome unknown" 504, never 409 for the key's lifetime.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { RUNNING_GRACE_MS } from "../../gateway/delivery/idempotency.js";
import type { Env } from "../../lib/env.js";
import type { HaproxyServer } from "../../local-stack/haproxy.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { startFleet, type Fleet } from "../helpers/fleet.js";
import { gatewayEnv } from "../helpers/gateway.js";
import type { Target } from "../helpers/ledger/client.js";
import { assertAsyncSettled, assertEveryRequestAnswered, assertKeysActOnce, assertNoKeyStuck } from "../helpers/ledger/checks.js";
import { GatewayInstance } from "../helpers/ledger/gateway-instance.js";
import { startLoadBalancer } from "../helpers/ledger/load-balancer.js";
import { LedgerRun, tally } from "../helpers/ledger/run.js";
import { Teardown } from "../helpers/stack.js";

const DEVICES = Array.from({ length: 10 }, (_, i) => `nl-dev${i}`);
/** The gateway's deadline per exchange, and how long an asynchronous request may wait in the offline queue. */
const REQUEST_TIMEOUT_MS = 5_000;
const QUEUE_TTL_S = 8;
/** Kill, restart, kill, ...: each of the three, in turn, this many times. */
const ROUNDS = 2;

describe(
  "nothing lost: mixed load through two gateway processes while a gateway, Redis and Prosody are killed and restarted",
  { timeout: 900_000 },
  () => {
    const teardown = new Teardown();
    const run = new LedgerRun({
      devices: DEVICES,
      clients: 6,
      paceMs: 30,
      maxRequests: 2500,
      // A fifth of the requests keep the device busy this long, so that requests are in flight at every kill.
      slowMs: 400,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      queueTtlS: QUEUE_TTL_S,
      runningGraceMs: RUNNING_GRACE_MS,
      clientTimeoutMs: REQUEST_TIMEOUT_MS + 5_000,
      // Longer than a gateway restart takes on a busy machine (13 s was seen, with no instance UP in HAProxy
      // meanwhile), else a patient client's request counts as lost for what is only a slow restart.
      retryWindowMs: 60_000,
      maxAttempts: 60,
      servedBetween: 50,
    });
    const now = (): number => run.now();
    let redis: RedisServer;
    let prosody: ProsodyServer;
    let fleet: Fleet;
    let lb: HaproxyServer;
    let a: GatewayInstance;
    let b: GatewayInstance;
    let lbTarget: Target;
    let logDir = "";
    /**
     * When each gateway instance was SIGKILLed, and until when HAProxy may still have sent it requests: until it
     * reported the instance DOWN, or the next incarnation was up if that came first (Infinity until one is seen).
     */
    const gatewayKills: Array<{ at: number; until: number }> = [];
    let loaded = false;
    before(async () => {
      const [r, p] = await Promise.allSettled([startRedis({ persistent: true }), startProsody()]);
      if (r.status === "fulfilled") redis = teardown.stopLater("redis", r.value);
      if (p.status === "fulfilled") prosody = teardown.stopLater("prosody", p.value);
      if (r.status === "rejected") throw r.reason;
      if (p.status === "rejected") throw p.reason;

      logDir = await makeTempDir("nothing-lost-logs-");
      teardown.add("log dir", () => removeDir(logDir));
      const prefix = `nl-${randomBytes(3).toString("hex")}:`;
      const env = (incarnation: string): Env =>
        gatewayEnv(
          { redis, prosody },
          {
            GATEWAY_INSTANCE_ID: incarnation,
            REDIS_KEY_PREFIX: prefix,
            GATEWAY_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
            GATEWAY_QUEUE_TTL_S: String(QUEUE_TTL_S),
            GATEWAY_OFFLINE_RETRY_AFTER_S: "1",
            GATEWAY_DRAIN_GRACE_MS: "0",
            GATEWAY_DRAIN_TIMEOUT_MS: "2000",
            LOG_LEVEL: "info", // one line per request: which incarnation answered which attempt
          },
        );
      // Each instance's first incarnation listens on port 0; the later ones on the port it got.
      a = new GatewayInstance("ga", env, logDir);
      b = new GatewayInstance("gb", env, logDir);
      teardown.add("gateway processes", () => Promise.all([a.stop(), b.stop()]));
      await a.start();
      await pollUntil("ga ready (holding the component)", async () => (await a.readiness())?.status === 200, {
        timeoutMs: 60_000,
        intervalMs: 50,
      });
      await b.start(); // the hot standby

      fleet = teardown.stopLater("fleet", await startFleet(prosody, DEVICES, (id) => run.book.handler(id)));
      // The serving instance UP, the standby DOWN (not ready: it does not hold the component).
      ({ lb, target: lbTarget } = await startLoadBalancer(teardown, [a, b], { [a.name]: "UP", [b.name]: "DOWN" }));
    });
    after(() => teardown.run());

    /** The instance holding the component (ready), if any. */
    async function serving(): Promise<GatewayInstance | undefined> {
      for (const g of [a, b]) if ((await g.readiness())?.status === 200) return g;
      return undefined;
    }

    it(
      "answers every request exactly once, with its own reply or a catalogue error, through the disruptions",
      { timeout: 600_000 },
      async () => {
        await run.startLoad(lbTarget, [a.target, b.target]);
        loaded = true;
        try {
          for (let round = 1; round <= ROUNDS; round++) {
            await run.disrupt(`#${round} gateway SIGKILL`, async () => {
              const victim = await pollUntil("the serving instance", serving, { timeoutMs: 30_000 });
              const other = victim === a ? b : a;
              const old = victim.incarnation;
              const kill = { at: now(), until: Infinity };
              gatewayKills.push(kill);
              await victim.kill();
              void pollUntil(`${old} DOWN in HAProxy`, async () => (await lb.serverStates())[victim.name] === "DOWN", {
                timeoutMs: 60_000,
                intervalMs: 20,
              }).then(
                () => (kill.until = Math.min(kill.until, now())),
                () => undefined,
              );
              // The standby takes the component over at its next attempt (jittered backoff): give it a moment, so
              // that it, and not only the restarted instance, serves in its turn; then restart the victim anyway.
              const tookOver = await pollUntil("the standby to take over", async () => (await other.readiness())?.status === 200, {
                timeoutMs: 5_000,
                intervalMs: 50,
              }).catch(() => false);
              await victim.start();
              kill.until = Math.min(kill.until, now());
              return `${old} killed, ${tookOver ? `${other.incarnation} took over` : "no takeover within 5 s"}, ${victim.incarnation} started`;
            });

            await run.disrupt(`#${round} redis SIGKILL`, async () => {
              await redis.kill();
              const killedAt = now();
              await pollUntil(
                "the gateways to see Redis gone",
                async () => (await a.readiness())?.checks.redis === false && (await b.readiness())?.checks.redis === false,
                { timeoutMs: 30_000, intervalMs: 20 },
              );
              // Down long enough for the load to meet the outage and for the devices to finish what they were doing
              // when it began: their replies come back while there is no Redis to record them in.
              const storeErrors = () =>
                run.client.answerLog.filter(
                  (x) => x.at >= killedAt && x.answer.kind === "error" && x.answer.code === "GW_STORE_UNAVAILABLE",
                ).length;
              await pollUntil("the load to meet the outage", () => storeErrors() >= 3 && run.book.inFlight === 0, {
                timeoutMs: 3_000,
              }).catch(() => undefined);
              const downMs = now() - killedAt;
              await redis.restart(); // same port, same dir: its append-only file
              return `down ${downMs} ms (${storeErrors()} answers 503 GW_STORE_UNAVAILABLE meanwhile), restarted with its data`;
            });

            await run.disrupt(`#${round} prosody SIGKILL`, async () => {
              const was = (await serving())?.incarnation ?? "none";
              await prosody.kill();
              await pollUntil(
                "the gateways to see Prosody gone",
                async () => (await a.readiness())?.checks.xmpp === false && (await b.readiness())?.checks.xmpp === false,
                { timeoutMs: 30_000, intervalMs: 20 },
              );
              await prosody.restart(); // same ports, accounts and config
              await pollUntil("every agent back online", () => fleet.devices.every((d) => d.agent.online), { timeoutMs: 60_000 });
              return `served by ${was} before, by ${(await pollUntil("a serving instance", serving, { timeoutMs: 60_000 })).incarnation} after`;
            });
          }
        } finally {
          await run.stopLoad();
        }

        assertEveryRequestAnswered(run, gatewayKills);
      },
    );

    it(
      "settles every accepted asynchronous request: the same result on both instances, never 404, never pending forever",
      { timeout: 180_000 },
      async () => {
        assert.ok(loaded, "the load ran");
        await assertAsyncSettled(run);
      },
    );

    it(
      "never actuates a keyed request twice: not under the chaos, not when every key is sent again after it",
      { timeout: 270_000 },
      async () => {
        assert.ok(loaded, "the load ran");
        await assertKeysActOnce(run);
      },
    );

    it("answers every key again once its request is over: none stays 409 GW_IDEMPOTENCY_IN_FLIGHT past its deadline", () => {
      assert.ok(loaded, "the load ran");
      assertNoKeyStuck(run);
    });

    it("prints the figures", async (t) => {
      assert.ok(loaded, "the load ran");
      const logs = [...(await a.logLines()), ...(await b.logLines())];
      const events = tally(
        logs.filter((x) => typeof x.line.event === "string" && x.line.level !== undefined && Number(x.line.level) >= 40),
        (x) => `${x.incarnation} ${String(x.line.event)}`,
      );
      const deviceRequests = logs.filter((x) => x.line.msg === "request" && typeof x.line.deviceId === "string");
      const servedBy = tally(
        deviceRequests.filter((x) => /^n\d+-[0-9a-f]+\.\d+$/.test(String(x.line.requestId))),
        (x) => x.incarnation,
      );
      const directly = tally(
        deviceRequests.filter((x) => /^n\d+-[0-9a-f]+\.[rk]\d+$/.test(String(x.line.requestId))),
        (x) => x.incarnation,
      );
      const polled = tally(
        logs.filter((x) => x.line.msg === "request" && typeof x.line.path === "string" && x.line.path.startsWith("/requests/")),
        (x) => x.incarnation,
      );
      const f = run.figures();
      const lines = [
        ...f.lines.slice(0, -1),
        `device requests by incarnation (access logs): through HAProxy ${JSON.stringify(servedBy)}; replays sent directly ${JSON.stringify(directly)}; GET /requests/{id} ${JSON.stringify(polled)}`,
        `warnings and errors logged: ${JSON.stringify(events)}`,
        ...f.lines.slice(-1),
      ];
      console.log(lines.map((line) => `nothing-lost | ${line}`).join("\n"));
      t.diagnostic(`gateway logs: ${logDir}, HAProxy's: ${lb.dir} (kept with HARNESS_KEEP_DIRS=1)`);
      t.diagnostic(`nothing-lost: ${run.load.done.length} requests, LOST ${f.lost}, DUPLICATES ${f.duplicates}, WRONG ${f.wrong}`);
    });
  },
);
