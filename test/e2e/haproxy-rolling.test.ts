// Two gateway PROCESSES behind a real HAProxy (health-checking /readyz), on ejabberd, which lets both hold the
// component domain at once and spreads the devices' replies over them at random (each forwards the other's
// through Redis). A steady, bounded load runs throughout, every request carrying a token of its own that must
// come back in its own reply. Then: a rolling restart (SIGTERM, exit 0, start again on the same port, UP again;
// A, then B) must lose nothing; and a kill -9 may fail only what the killed instance held.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import type { Env } from "../../lib/env.js";
import type { EjabberdServer } from "../../local-stack/ejabberd.js";
import { startHaproxy, type HaproxyServer } from "../../local-stack/haproxy.js";
import { pollUntil } from "../../local-stack/ports.js";
import { isAlive } from "../../local-stack/process.js";
import type { RedisServer } from "../../local-stack/redis.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { echoDevice } from "../helpers/echo-device.js";
import { startFleet } from "../helpers/fleet.js";
import { gatewayEnv } from "../helpers/gateway.js";
import { GatewayIncarnations } from "../helpers/gateway-process.js";
import { startEjabberdStack, Teardown } from "../helpers/stack.js";

const DEVICES = Array.from({ length: 10 }, (_, i) => `roll-dev${i + 1}`);
const CLIENTS = 4;
const SLOW_MS = 300;
const DRAIN_GRACE_MS = 2_000;
const DRAIN_TIMEOUT_MS = 5_000;
// A reply lost between instances shows up as a 504 within the test's time, not after the default 30 s.
const REQUEST_TIMEOUT_MS = 8_000;

const t0 = performance.now();
/** Milliseconds since this file was loaded: one clock for requests, signals and HAProxy states. */
const now = (): number => Math.round(performance.now() - t0);

// ---------------------------------------------------------------------------------------------------------
// Steady load: CLIENTS loops, one request at a time each, through HAProxy (keep-alive, like real clients).

type Kind = "get" | "slow" | "post";

interface Outcome {
  seq: number;
  token: string;
  kind: Kind;
  device: string;
  startedAt: number;
  endedAt: number;
  /** 0: no HTTP answer (connection error). */
  status: number;
  ok: boolean;
  /** Why it is not ok: the gateway's error code, HAProxy's page title, a socket error, or a mismatch. */
  why?: string;
}

class SteadyLoad {
  readonly outcomes: Outcome[] = [];
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  private readonly starts = new Map<number, number>(); // seq → startedAt, while in flight
  private readonly loops: Array<Promise<void>> = [];
  private seq = 0;
  private stopping = false;

  constructor(
    private readonly port: number,
    private readonly maxRequests: number,
  ) {}

  start(): void {
    for (let i = 0; i < CLIENTS; i++) this.loops.push(this.loop());
  }

  inFlight(): number {
    return this.starts.size;
  }

  completed(): number {
    return this.outcomes.length;
  }

  /** Stops issuing; resolves once every request in flight has its outcome. */
  async stop(): Promise<Outcome[]> {
    this.stopping = true;
    await Promise.all(this.loops);
    this.agent.destroy();
    return this.outcomes;
  }

  private async loop(): Promise<void> {
    while (!this.stopping && this.seq < this.maxRequests) this.outcomes.push(await this.one(this.seq++));
  }

  private one(seq: number): Promise<Outcome> {
    const token = `tok${seq}-${randomBytes(6).toString("hex")}`;
    const device = DEVICES[seq % DEVICES.length] as string;
    const kind: Kind = seq % 5 === 0 ? "slow" : seq % 5 === 2 ? "post" : "get";
    const devicePath = kind === "post" ? "/echo" : `/${kind === "slow" ? "slow" : "read"}?token=${token}`;
    const startedAt = now();
    this.starts.set(seq, startedAt);
    const done = (status: number, why?: string): Outcome => {
      this.starts.delete(seq);
      return { seq, token, kind, device, startedAt, endedAt: now(), status, ok: why === undefined, ...(why !== undefined ? { why } : {}) };
    };
    return new Promise((resolve) => {
      const headers: Record<string, string> = { "X-Request-Id": token };
      if (kind === "post") headers["Content-Type"] = "text/plain";
      const req = http.request(
        {
          host: "127.0.0.1",
          port: this.port,
          method: kind === "post" ? "POST" : "GET",
          path: `/devices/${device}${devicePath}`,
          headers,
          agent: this.agent,
        },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
          res.on("error", (err) => resolve(done(0, `response ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            resolve(done(status, check(status, res.headers, body)));
          });
        },
      );
      req.setTimeout(20_000, () => req.destroy(new Error("no answer within 20 s")));
      req.on("error", (err) => resolve(done(0, (err as NodeJS.ErrnoException).code ?? err.message)));
      req.end(kind === "post" ? token : undefined);
    });

    function check(status: number, headers: http.IncomingHttpHeaders, body: string): string | undefined {
      if (status !== 200) {
        try {
          return (JSON.parse(body) as { error: { code: string } }).error.code;
        } catch {
          return /<h1>([^<]*)<\/h1>/.exec(body)?.[1] ?? body.slice(0, 80);
        }
      }
      if (headers["x-request-id"] !== token) return `cross-talk: X-Request-Id ${String(headers["x-request-id"])}`;
      if (headers["x-device"] !== device) return `cross-talk: answered by device ${String(headers["x-device"])}`;
      if (kind === "post") return body === token ? undefined : `cross-talk: body ${body.slice(0, 60)}`;
      try {
        const report = JSON.parse(body) as { device: string; url: string };
        return report.url === devicePath ? undefined : `cross-talk: device saw ${report.url}`;
      } catch {
        return `unexpected body ${body.slice(0, 60)}`;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Gateway processes: `node --import tsx gateway/main.ts`, one incarnation after another on a fixed port.

interface LogEntry {
  incarnation: string;
  requestId: string;
  status: number;
  code?: string;
}

/** A gateway instance whose start waits for readiness, with its device request lines. */
class GatewayProcess extends GatewayIncarnations {
  constructor(name: string, env: (instanceId: string) => Env, logDir: string) {
    super(name, env, logDir, { waitFor: "ready" });
  }

  override async stop(): Promise<void> {
    await super.stop(DRAIN_GRACE_MS + DRAIN_TIMEOUT_MS + 3_000);
  }

  /** Device request lines of every incarnation so far (its access log: one JSON line per request). */
  async requestLog(): Promise<LogEntry[]> {
    const entries: LogEntry[] = [];
    for (const { incarnation, line } of await this.logLines()) {
      const e = line as { msg?: string; requestId: string; deviceId?: string; status: number; code?: string };
      if (e.msg !== "request" || e.deviceId === undefined) continue; // /readyz, /metrics
      entries.push({ incarnation, requestId: e.requestId, status: e.status, ...(e.code ? { code: e.code } : {}) });
    }
    return entries;
  }

  /** Requests this instance sent to their device again because the other instance's connection closed. */
  async resends(): Promise<number> {
    let count = 0;
    for (const { line } of await this.logLines()) {
      const e = line as { event?: string; count?: number };
      if (e.event === "resent") count += e.count ?? 0;
    }
    return count;
  }
}

// ---------------------------------------------------------------------------------------------------------
// HAProxy's view of the servers, sampled every 50 ms, with the time of each change.

class StateWatch {
  readonly changes: Array<{ at: number; server: string; state: string }> = [];
  private readonly last = new Map<string, string>();
  private busy = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly lb: HaproxyServer) {
    this.timer = setInterval(() => void this.sample(), 50);
  }

  private async sample(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const states = await this.lb.serverStates();
      const at = now();
      for (const [server, state] of Object.entries(states)) {
        if (this.last.get(server) === state) continue;
        this.last.set(server, state);
        this.changes.push({ at, server, state });
      }
    } catch {
      // HAProxy stopping: nothing to sample
    } finally {
      this.busy = false;
    }
  }

  /** First time `server` was seen in `state` at or after `since`. */
  firstSeen(server: string, state: string, since: number): number | undefined {
    return this.changes.find((c) => c.server === server && c.state === state && c.at >= since)?.at;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

// ---------------------------------------------------------------------------------------------------------

function describeOutcome(o: Outcome, marks: Array<{ at: number; what: string }>, servedBy: Map<string, LogEntry>): string {
  const mark = [...marks].reverse().find((m) => m.at <= o.startedAt) ?? marks[0];
  const rel = (t: number) => (mark ? `${mark.what}${t - mark.at >= 0 ? "+" : ""}${t - mark.at}ms` : `${t}ms`);
  const logged = servedBy.get(o.token);
  const where = logged ? `logged by ${logged.incarnation} as ${logged.status}${logged.code ? ` ${logged.code}` : ""}` : "in no gateway log";
  return `#${o.seq} ${o.kind} ${o.device}: ${o.status} ${o.why ?? ""}, started ${rel(o.startedAt)}, ended ${rel(o.endedAt)}, ${where}`;
}

async function servedByMap(gateways: GatewayProcess[]): Promise<Map<string, LogEntry>> {
  const map = new Map<string, LogEntry>();
  for (const g of gateways) for (const e of await g.requestLog()) map.set(e.requestId, e);
  return map;
}

/** HAProxy's counters per server: retries (wretr), redispatches (wredis), 5xx answers, connection errors. */
async function haproxyCounters(lb: HaproxyServer): Promise<string> {
  const rows = (await lb.showStat()).filter((r) => r.pxname === "gateways");
  return rows.map((r) => `${r.svname}: retr ${r.wretr} redis ${r.wredis} 5xx ${r.hrsp_5xx} econ ${r.econ} eresp ${r.eresp}`).join("; ");
}

function share(entries: LogEntry[], tokens: Set<string>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of entries) if (tokens.has(e.requestId)) counts[e.incarnation] = (counts[e.incarnation] ?? 0) + 1;
  return counts;
}

describe("gateway processes behind HAProxy on ejabberd: rolling restart and crash under load", { timeout: 600_000 }, () => {
  const teardown = new Teardown();
  let redis: RedisServer;
  let ejabberd: EjabberdServer;
  let lb: HaproxyServer;
  let watch: StateWatch;
  let a: GatewayProcess;
  let b: GatewayProcess;
  const pids: Array<{ what: string; pid: number }> = [];

  before(async () => {
    ({ redis, ejabberd } = await startEjabberdStack(teardown));
    pids.push({ what: "redis", pid: redis.pid }, { what: "ejabberd beam", pid: ejabberd.pid });

    const logDir = await makeTempDir("rolling-logs-");
    teardown.add("log dir", () => removeDir(logDir));
    const prefix = `roll-${randomBytes(3).toString("hex")}:`;
    const env = (instanceId: string) =>
      gatewayEnv(
        { redis, prosody: ejabberd },
        {
          GATEWAY_INSTANCE_ID: instanceId,
          REDIS_KEY_PREFIX: prefix,
          GATEWAY_DRAIN_GRACE_MS: String(DRAIN_GRACE_MS),
          GATEWAY_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
          GATEWAY_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
          LOG_LEVEL: "info", // the access log tells which instance served which token
        },
      );
    // Each instance's first incarnation listens on port 0; the later ones on the port it got.
    a = new GatewayProcess("ga", env, logDir);
    b = new GatewayProcess("gb", env, logDir);
    teardown.add("gateway processes", () => Promise.all([a.stop(), b.stop()]));
    await Promise.all([a.start(), b.start()]);

    // The agents announce themselves (directed presence) to a gateway that is already there.
    const slowOr = (id: string) => {
      const echo = echoDevice(id);
      return (req: http.IncomingMessage, res: http.ServerResponse) => {
        if (req.url?.startsWith("/slow")) setTimeout(() => echo(req, res), SLOW_MS);
        else echo(req, res);
      };
    };
    teardown.stopLater("fleet", await startFleet(ejabberd, DEVICES, slowOr));

    lb = teardown.stopLater(
      "haproxy",
      await startHaproxy([
        { name: a.name, port: a.port },
        { name: b.name, port: b.port },
      ]),
    );
    pids.push({ what: "haproxy", pid: lb.pid });
    watch = new StateWatch(lb);
    teardown.add("state watch", () => watch.stop());
    await pollUntil(
      "both gateways UP in HAProxy",
      async () => {
        const s = await lb.serverStates();
        return s[a.name] === "UP" && s[b.name] === "UP";
      },
      { timeoutMs: 30_000 },
    );
  });
  after(() => teardown.run());

  it(
    "rolling restart (SIGTERM, exit 0, restart, UP; A then B) under steady load: every request 200 with its own token, but a POST whose reply ejabberd drops at a closing connection",
    { timeout: 240_000 },
    async (t) => {
      const load = new SteadyLoad(lb.port, 20_000);
      const marks: Array<{ at: number; what: string }> = [{ at: now(), what: "load start" }];
      const timeline: string[] = [];
      /** Each stop: the incarnation that went, from its SIGTERM to its exit (its component connection closed within). */
      const stops: Array<{ incarnation: string; sigtermAt: number; exitedAt: number }> = [];
      load.start();
      try {
        await pollUntil("load warmed up", () => load.completed() >= 40, { timeoutMs: 30_000 });
        for (const g of [a, b]) {
          const old = g.incarnation;
          const sigtermAt = now();
          marks.push({ at: sigtermAt, what: `SIGTERM ${old}` });
          const inFlight = load.inFlight();
          const exit = await g.signal("SIGTERM", DRAIN_GRACE_MS + DRAIN_TIMEOUT_MS + 5_000);
          const exitedAt = now();
          assert.deepEqual(exit, { code: 0, signal: null }, `${old} must exit 0 on SIGTERM`);
          stops.push({ incarnation: old, sigtermAt, exitedAt });
          await g.start();
          const readyAt = now();
          await pollUntil(`${g.name} UP again in HAProxy`, async () => (await lb.serverStates())[g.name] === "UP", { timeoutMs: 30_000 });
          const upAt = now();
          const downAt = watch.firstSeen(g.name, "DOWN", sigtermAt);
          timeline.push(
            `${old}: SIGTERM at ${sigtermAt} ms (${inFlight} requests in flight), HAProxy DOWN at +${downAt !== undefined ? downAt - sigtermAt : "?"} ms ` +
              `(grace ${DRAIN_GRACE_MS} ms), exit 0 at +${exitedAt - sigtermAt} ms; ${g.incarnation} ready at +${readyAt - sigtermAt} ms, UP at +${upAt - sigtermAt} ms`,
          );
          marks.push({ at: upAt, what: `${g.incarnation} UP` });
          // Let the new incarnation take its share before the next one goes.
          const mark = load.completed();
          await pollUntil("load after the restart", () => load.completed() >= mark + 40, { timeoutMs: 30_000 });
        }
      } finally {
        await load.stop();
      }

      const outcomes = load.outcomes;
      const failed = outcomes.filter((o) => !o.ok);
      const servedBy = await servedByMap([a, b]);
      const tokens = new Set(outcomes.map((o) => o.token));
      const duration = Math.max(...outcomes.map((o) => o.endedAt)) - Math.min(...outcomes.map((o) => o.startedAt));
      for (const line of timeline) t.diagnostic(line);
      t.diagnostic(
        `requests: ${outcomes.length} in ${duration} ms (${outcomes.filter((o) => o.kind === "slow").length} slow, ${outcomes.filter((o) => o.kind === "post").length} POST), failed: ${failed.length}`,
      );
      t.diagnostic(
        `share by incarnation (access logs): ${JSON.stringify(share([...(await a.requestLog()), ...(await b.requestLog())], tokens))}`,
      );
      t.diagnostic(`HAProxy counters: ${await haproxyCounters(lb)}`);
      t.diagnostic(`HAProxy states: ${watch.changes.map((c) => `${c.server}=${c.state}@${c.at}`).join(", ")}`);
      for (const o of failed.slice(0, 30)) t.diagnostic(`FAILED ${describeOutcome(o, marks, servedBy)}`);
      // ejabberd spreads replies over the component connections at random, and one it routed to a component
      // session in the instant that session ends is lost (README, "Running several instances"). The owner sends
      // an idempotent request again when the other instance's connection has closed, so only a POST held by
      // another instance, sent while the stopping one was closing, can still end at its deadline (504), never
      // wrong. Every other failure is a loss.
      const lostAtClose = (o: Outcome) => {
        const logged = servedBy.get(o.token);
        return (
          o.kind === "post" &&
          o.status === 504 &&
          o.why === "GW_DEVICE_TIMEOUT" &&
          logged !== undefined &&
          stops.some((s) => logged.incarnation !== s.incarnation && o.startedAt >= s.sigtermAt && o.startedAt <= s.exitedAt)
        );
      };
      t.diagnostic(
        `replies lost at a closing component connection (ejabberd): ${failed.filter(lostAtClose).length}; requests sent again after a departure: ${(await a.resends()) + (await b.resends())}`,
      );
      assert.ok(
        failed.filter(lostAtClose).length <= stops.length * CLIENTS,
        "no more than the requests in flight while a connection closed",
      );
      assert.deepEqual(
        failed.filter((o) => !lostAtClose(o)).map((o) => describeOutcome(o, marks, servedBy)),
        [],
        "a rolling restart must lose no request and mix up none",
      );
      for (const g of [a, b]) {
        for (const incarnation of g.incarnations) {
          assert.ok((share(await g.requestLog(), tokens)[incarnation] ?? 0) > 0, `${incarnation} served part of the load`);
        }
      }
    },
  );

  it(
    "kill -9 of one instance under load: only what it held fails, nothing started after DOWN fails, the survivor serves all",
    { timeout: 180_000 },
    async (t) => {
      await pollUntil(
        "both UP",
        async () => {
          const s = await lb.serverStates();
          return s[a.name] === "UP" && s[b.name] === "UP";
        },
        { timeoutMs: 30_000 },
      );
      const victim = b;
      const survivor = a;
      const load = new SteadyLoad(lb.port, 20_000);
      let killAt: number;
      /** When the victim's exit was seen: a request started between the signal and the exit may still reach it. */
      let exitedAt = 0;
      let downAt = 0;
      let inFlightAtKill: number;
      const victimIncarnation = victim.incarnation;
      load.start();
      try {
        await pollUntil("load warmed up", () => load.completed() >= 40, { timeoutMs: 30_000 });
        // A moment when requests are in flight (there nearly always are: 4 clients, some slow).
        await pollUntil("requests in flight", () => load.inFlight() >= 2, { timeoutMs: 30_000, intervalMs: 1 });
        inFlightAtKill = load.inFlight();
        killAt = now();
        const exit = await victim.signal("SIGKILL", 5_000);
        exitedAt = now();
        assert.equal(exit.signal, "SIGKILL");
        await pollUntil(`${victim.name} DOWN in HAProxy`, async () => (await lb.serverStates())[victim.name] === "DOWN", {
          timeoutMs: 15_000,
        });
        downAt = now();
        await pollUntil("load after DOWN", () => load.outcomes.filter((o) => o.startedAt >= downAt).length >= 80, { timeoutMs: 30_000 });
      } finally {
        await load.stop();
      }

      const outcomes = load.outcomes;
      const failed = outcomes.filter((o) => !o.ok);
      const afterDown = outcomes.filter((o) => o.startedAt >= downAt);
      const marks = [
        { at: killAt, what: `SIGKILL ${victimIncarnation}` },
        { at: exitedAt, what: `${victimIncarnation} exited` },
        { at: downAt, what: "DOWN" },
      ];
      // The survivor's access log must show every request started after DOWN (the file may lag a little).
      const afterDownTokens = new Set(afterDown.map((o) => o.token));
      await pollUntil(
        "the survivor's log to show every request started after DOWN",
        async () => (await survivor.requestLog()).filter((e) => afterDownTokens.has(e.requestId)).length >= afterDownTokens.size,
        { timeoutMs: 15_000, intervalMs: 50 },
      ).catch(() => undefined); // asserted below, with the details
      const servedBy = await servedByMap([a, b]);
      const survivorLog = new Map((await survivor.requestLog()).map((e) => [e.requestId, e]));

      t.diagnostic(
        `SIGKILL ${victimIncarnation} at ${killAt} ms with ${inFlightAtKill} requests in flight; HAProxy DOWN seen at +${downAt - killAt} ms`,
      );
      t.diagnostic(`requests: ${outcomes.length}, failed: ${failed.length}, started after DOWN: ${afterDown.length}`);
      t.diagnostic(
        `share by incarnation (access logs): ${JSON.stringify(share([...(await a.requestLog()), ...(await b.requestLog())], new Set(outcomes.map((o) => o.token))))}`,
      );
      t.diagnostic(`HAProxy counters (since start): ${await haproxyCounters(lb)}`);
      for (const o of failed) t.diagnostic(`FAILED ${describeOutcome(o, marks, servedBy)}`);

      assert.ok(
        failed.length <= inFlightAtKill,
        `at most the ${inFlightAtKill} requests in flight at the kill may fail, not ${failed.length}`,
      );
      assert.deepEqual(
        // Not from the signal: the process dies a little after it, and HAProxy may hand it a connection meanwhile
        // (a request started 2 ms after the signal was reset by the dying process in one run).
        failed.filter((o) => o.startedAt > exitedAt).map((o) => describeOutcome(o, marks, servedBy)),
        [],
        "a request started after the victim exited is never lost (HAProxy retries a refused connection elsewhere)",
      );
      // ejabberd spreads replies over the component connections at random: a reply for a request the survivor
      // holds may be routed to the victim's connection, which stays open at ejabberd until the killed process
      // has exited (the kernel closes its socket then), and is lost with it. Such a request started before the
      // victim exited (one started 18 ms after the signal was, in one run), and ends at its deadline (504),
      // never wrong.
      assert.deepEqual(
        failed
          .filter((o) => survivorLog.has(o.token) && !(o.startedAt <= exitedAt && o.status === 504 && o.why === "GW_DEVICE_TIMEOUT"))
          .map((o) => describeOutcome(o, marks, servedBy)),
        [],
        "a request the survivor held fails only if its reply was on its way through the crashed connection",
      );
      assert.deepEqual(
        afterDown.filter((o) => !o.ok).map((o) => describeOutcome(o, marks, servedBy)),
        [],
        "nothing started after DOWN fails",
      );
      const notOnSurvivor = afterDown.filter((o) => survivorLog.get(o.token)?.status !== 200);
      assert.deepEqual(
        notOnSurvivor.map((o) => describeOutcome(o, marks, servedBy)),
        [],
        `${survivor.incarnation} serves everything after DOWN`,
      );
    },
  );

  it("leaves no process behind: gateways, haproxy, ejabberd, redis", async () => {
    for (const g of [a, b]) for (const pid of g?.pids ?? []) pids.push({ what: `gateway ${g.name}`, pid });
    const node = ejabberd?.node;
    const dirs = [ejabberd?.dir, lb?.dir, redis?.dir].filter((d): d is string => d !== undefined);
    assert.deepEqual(await teardown.run(), []);
    assert.deepEqual(
      pids.filter((p) => isAlive(p.pid)),
      [],
      "every process this file started has exited",
    );
    const ps = spawnSync("ps", ["-eo", "pid=,stat=,args="], { encoding: "utf8" });
    const leftovers = ps.stdout
      .split("\n")
      .filter((line) => !/^\s*\d+\s+Z/.test(line))
      .filter((line) => (node !== undefined && line.includes(node)) || dirs.some((d) => line.includes(d)));
    assert.deepEqual(leftovers, [], "no ejabberd beam, epmd-less node, haproxy or redis of ours");
  });
});
