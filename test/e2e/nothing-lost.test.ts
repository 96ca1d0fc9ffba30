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
// How the client treats a failure (that of a client behind a load balancer):
//   - an answer from the gateway (device reply or catalogue error) is final, except that a keyed request is
//     sent again, same key and same request, on 409 GW_IDEMPOTENCY_IN_FLIGHT and on the errors that prove the
//     device was not reached (503 GW_STORE_UNAVAILABLE, GW_XMPP_UNAVAILABLE, GW_DEVICE_OFFLINE,
//     GW_SHUTTING_DOWN, GW_OVERLOADED; 429 GW_DEVICE_BUSY; 504 GW_DEVICE_QUEUE_TIMEOUT), as the README says such
//     outcomes free the key;
//   - "not sent" (HAProxy's own 503 "no server is available", a refused connection): nothing reached any
//     instance, so any request is sent again;
//   - "no answer" (a reset or closed connection, HAProxy's own 502/504: the instance holding it was killed):
//     GET/HEAD/OPTIONS and keyed requests are sent again; an unkeyed POST/PUT/PATCH/DELETE is not, since the
//     device may or may not have acted: it is counted as AMBIGUOUS (expected only around the gateway kill);
//   - retries are bounded (attempts and time); a request that never got any answer from the gateway is LOST.
// Some keyed requests are also sent a second time right after their answer (a client that lost it), to one
// instance or the other directly.
//
// The figures (requests, device replies, errors by code, duplicates, lost, ambiguous) are printed at the end,
// lines starting with "nothing-lost |". A key that stays 409 GW_IDEMPOTENCY_IN_FLIGHT after its request is over
// counts as lost: a request whose outcome was never recorded (its instance killed, Redis away at that moment)
// must answer, after its deadline, with the kept "outcome unknown" 504, never 409 for the key's lifetime.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import { setTimeout as pause } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { RUNNING_GRACE_MS } from "../../gateway/delivery/idempotency.js";
import type { Env } from "../../lib/env.js";
import { startHaproxy, type HaproxyServer } from "../../local-stack/haproxy.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { CATALOGUE, type ErrorCode } from "../../gateway/errors.js";
import { startFleet, type Fleet } from "../helpers/fleet.js";
import { gatewayEnv } from "../helpers/gateway.js";
import { GatewayIncarnations } from "../helpers/gateway-process.js";
import { Teardown } from "../helpers/stack.js";

const DEVICES = Array.from({ length: 10 }, (_, i) => `nl-dev${i}`);
/** Client loops, each one request at a time (its retries and replays included), paced. */
const CLIENTS = 6;
const PACE_MS = 30;
/** The load is bounded in count, whatever happens. */
const MAX_REQUESTS = 2500;
/** The gateway's deadline per exchange, and how long an asynchronous request may wait in the offline queue. */
const REQUEST_TIMEOUT_MS = 5_000;
const QUEUE_TTL_S = 8;
/** A fifth of the requests keep the device busy this long, so that requests are in flight at every kill. */
const SLOW_MS = 400;
/** A request the gateway has not answered by then is a hang (the gateway answers by its deadline). */
const CLIENT_TIMEOUT_MS = REQUEST_TIMEOUT_MS + 5_000;
/**
 * How long, and how often, the client keeps trying one request: longer than a gateway restart takes on a busy
 * machine (13 s was seen, with no instance UP in HAProxy meanwhile), else a patient client's request counts
 * as lost for what is only a slow restart.
 */
const RETRY_WINDOW_MS = 60_000;
const MAX_ATTEMPTS = 60;
/** Kill, restart, kill, ...: each of the three, in turn, this many times. */
const ROUNDS = 2;
/** Requests served after each recovery before the next disruption. */
const SERVED_BETWEEN = 80;

type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS";
const UNSAFE: ReadonlySet<Method> = new Set<Method>(["POST", "PUT", "PATCH", "DELETE"]);
const METHOD_WEIGHTS: ReadonlyArray<[Method, number]> = [
  ["GET", 4],
  ["HEAD", 1],
  ["OPTIONS", 1],
  ["POST", 3],
  ["PUT", 2],
  ["PATCH", 2],
  ["DELETE", 2],
];

/** Catalogue errors after which a keyed request is sent again (the device was not reached, or it still runs). */
const KEYED_RETRY: ReadonlySet<string> = new Set<ErrorCode>([
  "GW_IDEMPOTENCY_IN_FLIGHT",
  "GW_STORE_UNAVAILABLE",
  "GW_XMPP_UNAVAILABLE",
  "GW_DEVICE_OFFLINE",
  "GW_SHUTTING_DOWN",
  "GW_OVERLOADED",
  "GW_DEVICE_BUSY",
  "GW_DEVICE_QUEUE_TIMEOUT",
]);
/** Outcomes that prove the device was not reached: not kept under the key (README "Idempotency-Key"). */
const NOT_KEPT: ReadonlySet<string> = new Set<ErrorCode>([
  "GW_DEVICE_OFFLINE",
  "GW_DEVICE_BUSY",
  "GW_DEVICE_QUEUE_TIMEOUT",
  "GW_XMPP_UNAVAILABLE",
  "GW_STORE_UNAVAILABLE",
  "GW_SHUTTING_DOWN",
  "GW_UNKNOWN_DEVICE",
  "GW_OVERLOADED",
  "GW_IDEMPOTENCY_IN_FLIGHT",
  "GW_IDEMPOTENCY_MISMATCH",
]);

const t0 = performance.now();
/** Milliseconds since this file was loaded: one clock for requests and disruptions. */
const now = (): number => Math.round(performance.now() - t0);

// ---------------------------------------------------------------------------------------------------------
// The devices: each answers with the request's token (path `/op/{token}` or `/slow/{token}`) in X-Token and in
// its JSON body, and counts what reached it: per token, and per Idempotency-Key for unsafe methods.

interface DeviceBody {
  device: string;
  method: string;
  token: string;
  hit: number;
  actuation?: number;
}

class DeviceBook {
  readonly hitsByToken = new Map<string, number>();
  /** `${device} ${key}` → actuations that reached the device. */
  readonly actuationsByKey = new Map<string, number>();
  /** Requests the devices are working on now: all, and those with an Idempotency-Key. */
  inFlight = 0;
  keyedInFlight = 0;

  handler(device: string) {
    return (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        const method = req.method ?? "";
        const [, kind = "", token = ""] = (req.url ?? "").split("?")[0]?.split("/") ?? [];
        const key = req.headers["idempotency-key"];
        const keyed = typeof key === "string" && UNSAFE.has(method as Method);
        if (kind === "probe") {
          res.setHeader("X-Device", device);
          res.setHeader("X-Token", token);
          res.end(JSON.stringify({ device, method, token, hit: 1 }));
          return;
        }
        const hit = (this.hitsByToken.get(token) ?? 0) + 1;
        this.hitsByToken.set(token, hit);
        let actuation: number | undefined;
        if (keyed) {
          actuation = (this.actuationsByKey.get(`${device} ${key}`) ?? 0) + 1;
          this.actuationsByKey.set(`${device} ${key}`, actuation);
        }
        this.inFlight++;
        if (keyed) this.keyedInFlight++;
        const answer = (): void => {
          this.inFlight--;
          if (keyed) this.keyedInFlight--;
          res.setHeader("X-Device", device);
          res.setHeader("X-Token", token);
          res.setHeader("X-Hit", String(hit));
          if (actuation !== undefined) res.setHeader("X-Actuation", String(actuation));
          if (method === "DELETE") {
            res.statusCode = 204;
            res.end();
            return;
          }
          if (method === "OPTIONS") res.setHeader("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
          res.setHeader("Content-Type", "application/json");
          const body: DeviceBody = { device, method, token, hit, ...(actuation !== undefined ? { actuation } : {}) };
          res.end(JSON.stringify({ ...body, received: Buffer.concat(parts).toString("utf8") }));
        };
        if (kind === "slow") setTimeout(answer, SLOW_MS);
        else answer();
      });
    };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Requests, answers and the client's policy.

interface Spec {
  seq: number;
  token: string;
  device: string;
  method: Method;
  path: string;
  body?: string;
  async: boolean;
  key?: string;
  /** Sent once more right after its answer, directly to an instance, as by a client that lost the answer. */
  replay: boolean;
}

function pick<T>(weights: ReadonlyArray<[T, number]>): T {
  const total = weights.reduce((s, [, w]) => s + w, 0);
  let r = Math.random() * total;
  for (const [value, w] of weights) {
    if ((r -= w) < 0) return value;
  }
  return (weights[0] as [T, number])[0];
}

function makeSpec(seq: number): Spec {
  const method = pick(METHOD_WEIGHTS);
  const token = `n${seq}-${randomBytes(4).toString("hex")}`;
  const slow = Math.random() < 0.2;
  const unsafe = UNSAFE.has(method);
  const key = unsafe && Math.random() < 0.6 ? `key-${token}` : undefined;
  return {
    seq,
    token,
    device: DEVICES[Math.floor(Math.random() * DEVICES.length)] as string,
    method,
    path: `/${slow ? "slow" : "op"}/${token}`,
    ...(unsafe && method !== "DELETE" ? { body: JSON.stringify({ token, seq }) } : {}),
    async: method !== "HEAD" && method !== "OPTIONS" && Math.random() < 0.2,
    ...(key ? { key } : {}),
    replay: key !== undefined && Math.random() < 0.3,
  };
}

/** What one attempt got. */
type Answer =
  | { kind: "device"; status: number; body: string; via: string }
  /** A catalogue error; its code is "?" only for HEAD, whose answers carry no body (status and headers only). */
  | { kind: "error"; status: number; code: ErrorCode | "?"; via: string }
  | { kind: "accepted"; id: string; via: string }
  | { kind: "not-sent"; why: string; via: string }
  | { kind: "no-answer"; why: string; via: string }
  | { kind: "bad"; why: string; via: string };

interface Target {
  name: string;
  port: number;
  agent: http.Agent;
}

/** Checks that a reply is the device's answer to THIS request; undefined if so, else why not. */
function foreignReply(spec: Spec, status: number, headers: http.IncomingHttpHeaders, body: string, method: string): string | undefined {
  const expected = spec.method === "DELETE" ? 204 : 200;
  if (status !== expected) return `status ${status}, expected ${expected}`;
  if (headers["x-device"] !== spec.device) return `X-Device ${String(headers["x-device"])}, asked ${spec.device}`;
  if (headers["x-token"] !== spec.token) return `X-Token ${String(headers["x-token"])}, sent ${spec.token}`;
  if (method === "HEAD" || status === 204) return body === "" ? undefined : `a body on ${method} ${status}`;
  try {
    const parsed = JSON.parse(body) as Partial<DeviceBody>;
    if (parsed.token !== spec.token || parsed.device !== spec.device || parsed.method !== spec.method) {
      return `body of ${String(parsed.device)} ${String(parsed.method)} ${String(parsed.token)}`;
    }
  } catch {
    return `not the device's JSON: ${body.slice(0, 80)}`;
  }
  return undefined;
}

function classify(
  spec: Spec,
  requestId: string,
  method: string,
  status: number,
  headers: http.IncomingHttpHeaders,
  body: string,
  via: string,
): Answer {
  if (headers["x-request-id"] !== requestId)
    return { kind: "bad", why: `X-Request-Id ${String(headers["x-request-id"])} on the answer to ${requestId}`, via };
  if (status === 202 && headers["location"] !== undefined) {
    const id = /^\/requests\/([A-Za-z0-9_-]+)$/.exec(headers["location"])?.[1];
    if (!spec.async || !id || headers["preference-applied"] !== "respond-async")
      return { kind: "bad", why: `unexpected 202 ${headers["location"]}`, via };
    return { kind: "accepted", id, via };
  }
  if ((headers["content-type"] ?? "").startsWith("application/json") && body.includes('"error"')) {
    let code: string | undefined;
    try {
      code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
    } catch {
      // not JSON after all: judged below as a device reply
    }
    if (code !== undefined) {
      if (!Object.hasOwn(CATALOGUE, code)) return { kind: "bad", why: `uncatalogued error ${status} ${body.slice(0, 120)}`, via };
      const c = code as ErrorCode;
      if (c === "GW_INTERNAL") return { kind: "bad", why: `500 GW_INTERNAL: ${body.slice(0, 160)}`, via };
      if (c !== "GW_DEVICE_ERROR" && CATALOGUE[c].status !== status) return { kind: "bad", why: `${c} with status ${status}`, via };
      return { kind: "error", status, code: c, via };
    }
  }
  // HEAD: no body, so no code to read; a gateway error is known by its JSON type, a catalogue status, no X-Device.
  const catalogueStatus = Object.values(CATALOGUE).some((c) => c.status === status);
  if (
    method === "HEAD" &&
    status !== 200 &&
    catalogueStatus &&
    headers["x-device"] === undefined &&
    (headers["content-type"] ?? "").startsWith("application/json")
  ) {
    return { kind: "error", status, code: "?", via };
  }
  const foreign = foreignReply(spec, status, headers, body, method);
  if (foreign === undefined) return { kind: "device", status, body, via };
  return { kind: "bad", why: `not its own reply (${foreign})`, via };
}

/** One attempt of `spec` at `target`, bounded by the client's own timeout. */
function attempt(target: Target, spec: Spec, requestId: string): Promise<Answer> {
  const via = target.name;
  const headers: Record<string, string> = { "X-Request-Id": requestId };
  if (spec.async) headers.Prefer = "respond-async";
  if (spec.key) headers["Idempotency-Key"] = spec.key;
  if (spec.body !== undefined) headers["Content-Type"] = "application/json";
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: target.port,
        method: spec.method,
        path: `/devices/${spec.device}${spec.path}`,
        headers,
        agent: target.agent,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("error", (err: NodeJS.ErrnoException) => resolve({ kind: "no-answer", why: `response ${err.code ?? err.message}`, via }));
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          // HAProxy's own pages (HTML, no X-Request-Id; no body at all for HEAD): the instance did not answer.
          // Its 503 means that no instance was available: the request was not sent anywhere.
          const ownPage = res.headers["x-request-id"] === undefined && (res.headers["content-type"] ?? "").startsWith("text/html");
          if (target.name === "lb" && ownPage && [502, 503, 504].includes(status)) {
            resolve({ kind: status === 503 ? "not-sent" : "no-answer", why: `haproxy ${status}`, via });
            return;
          }
          resolve(classify(spec, requestId, spec.method, status, res.headers, body, via));
        });
      },
    );
    req.setTimeout(CLIENT_TIMEOUT_MS, () => req.destroy(Object.assign(new Error("hang"), { code: "HANG" })));
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "HANG") resolve({ kind: "bad", why: `hang: no answer within ${CLIENT_TIMEOUT_MS} ms`, via });
      else if (err.code === "ECONNREFUSED") resolve({ kind: "not-sent", why: "connection refused", via });
      else resolve({ kind: "no-answer", why: err.code ?? err.message, via });
    });
    req.end(spec.body);
  });
}

function wantsRetry(spec: Spec, a: Answer): boolean {
  if (a.kind === "not-sent") return true;
  if (a.kind === "no-answer") return !UNSAFE.has(spec.method) || spec.key !== undefined;
  if (a.kind === "error") return spec.key !== undefined && KEYED_RETRY.has(a.code);
  return false;
}

/** Every attempt's answer, with when it came: what the load met during a disruption. */
const answerLog: Array<{ sentAt: number; at: number; answer: Answer; spec: Spec }> = [];

interface Sent {
  spec: Spec;
  startedAt: number;
  /** When its last attempt was answered (or given up). */
  endedAt: number;
  attempts: Answer[];
  /** The answer the client keeps: the last attempt's, or, when retries ran out on lost connections, the
   * gateway's last answer before them; "no-answer"/"not-sent" only when the gateway never answered at all. */
  final: Answer;
}

/** Sends `spec` until it has an answer the client keeps (see the policy above), cycling through `targets`. */
async function send(spec: Spec, targets: readonly Target[], label: string, windowMs = RETRY_WINDOW_MS): Promise<Sent> {
  const startedAt = now();
  const attempts: Answer[] = [];
  for (let n = 1; ; n++) {
    const target = targets[(n - 1) % targets.length] as Target;
    const sentAt = now();
    const a = await attempt(target, spec, `${spec.token}.${label}${n}`);
    attempts.push(a);
    answerLog.push({ sentAt, at: now(), answer: a, spec });
    const delayMs = Math.min(1_000, 50 * 2 ** Math.min(n, 5)) * (0.5 + Math.random() / 2);
    if (!wantsRetry(spec, a) || n >= MAX_ATTEMPTS || now() + delayMs > startedAt + windowMs) {
      // Out of retries after a lost connection: what the client keeps is the gateway's last word, if any.
      const heard = attempts.filter((x) => x.kind !== "no-answer" && x.kind !== "not-sent");
      return { spec, startedAt, endedAt: now(), attempts, final: heard[heard.length - 1] ?? a };
    }
    await pause(delayMs);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Gateway processes: `node --import tsx gateway/main.ts`, one incarnation after another on a fixed port, each
// logging (info: one line per request) to a file of its own.

/** A gateway instance whose start waits for its port only (a hot standby is never ready), with a client agent of its own. */
class GatewayInstance extends GatewayIncarnations {
  readonly agent = new http.Agent({ keepAlive: true });

  constructor(name: string, env: (incarnation: string) => Env, logDir: string) {
    super(name, env, logDir, { waitFor: "listening" });
  }

  get target(): Target {
    return { name: this.name, port: this.port, agent: this.agent };
  }

  /** /readyz: its status and checks, or undefined when nothing answers. */
  async readiness(): Promise<{ status: number; checks: Record<string, boolean> } | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.port}/readyz`, { signal: AbortSignal.timeout(2_000) });
      return { status: res.status, checks: ((await res.json()) as { checks: Record<string, boolean> }).checks };
    } catch {
      return undefined;
    }
  }

  override async stop(): Promise<void> {
    this.agent.destroy();
    await super.stop(8_000);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The load: CLIENTS loops through HAProxy, each one logical request at a time (with its retries and replay).

interface Done extends Sent {
  replays: Sent[];
}

class Load {
  readonly done: Done[] = [];
  private seq = 0;
  private stopping = false;
  private readonly loops: Array<Promise<void>> = [];

  constructor(
    private readonly lb: Target,
    private readonly direct: readonly [Target, Target],
  ) {}

  start(): void {
    for (let i = 0; i < CLIENTS; i++) this.loops.push(this.loop());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  /** Requests started at or after `since` that got their own device's reply (or were accepted). */
  servedSince(since: number): number {
    return this.done.filter((d) => d.startedAt >= since && (d.final.kind === "device" || d.final.kind === "accepted")).length;
  }

  private async loop(): Promise<void> {
    while (!this.stopping && this.seq < MAX_REQUESTS) {
      const spec = makeSpec(this.seq++);
      const sent = await send(spec, [this.lb], "");
      const replays: Sent[] = [];
      if (spec.replay) {
        const [a, b] = this.direct;
        replays.push(await send(spec, spec.seq % 2 === 0 ? [a, b] : [b, a], "r"));
      }
      this.done.push({ ...sent, replays });
      await pause(PACE_MS);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------

function tally<T>(items: readonly T[], keyOf: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) {
    const k = keyOf(item);
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

function answerKey(a: Answer): string {
  switch (a.kind) {
    case "device":
      return `device ${a.status}`;
    case "error":
      return `${a.status} ${a.code}`;
    case "accepted":
      return "202 accepted";
    default:
      return `${a.kind}: ${a.why}`;
  }
}

function describeSent(s: Sent): string {
  const { spec } = s;
  const flags = [spec.async ? "async" : "", spec.key ? "keyed" : ""].filter(Boolean).join(",");
  const attempts = s.attempts.map((a) => `${a.via}:${answerKey(a)}`).join(" → ");
  return `#${spec.seq} ${spec.method} ${spec.device}${spec.path}${flags ? ` [${flags}]` : ""} at ${s.startedAt} ms: ${attempts}`;
}

/** Same stored outcome: same status and body for a device reply, same code for an error. */
function sameOutcome(a: Answer, b: Answer): boolean {
  if (a.kind === "device" && b.kind === "device") return a.status === b.status && a.body === b.body;
  if (a.kind === "error" && b.kind === "error") return a.code === b.code && a.status === b.status;
  return false;
}

interface AsyncResult {
  done: Done;
  id: string;
  acceptedAt: number;
  /** The settled result, as read from each instance; undefined while unsettled. */
  result?: Answer;
  other?: Answer;
  polls: number;
  /** 404 GW_UNKNOWN_REQUEST, or still pending at the bound. */
  lost?: string;
}

/** GET /requests/{id} on one instance, judged against the request it answers. */
async function readResult(target: Target, spec: Spec, id: string, requestId: string): Promise<Answer | "pending"> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port: target.port,
        method: "GET",
        path: `/requests/${id}`,
        headers: { "X-Request-Id": requestId },
        agent: target.agent,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (c: string) => (body += c));
        res.on("error", (err: NodeJS.ErrnoException) => resolve({ kind: "no-answer", why: err.code ?? err.message, via: target.name }));
        res.on("end", () => {
          const status = res.statusCode ?? 0;
          if (status === 202) {
            resolve("pending");
            return;
          }
          // The stored reply is the device's answer to the original method, written as the answer to this GET.
          resolve(classify({ ...spec, async: false }, requestId, "GET", status, res.headers, body, target.name));
        });
      },
    );
    req.setTimeout(CLIENT_TIMEOUT_MS, () => req.destroy(Object.assign(new Error("hang"), { code: "HANG" })));
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "HANG") resolve({ kind: "bad", why: `hang: no answer within ${CLIENT_TIMEOUT_MS} ms`, via: target.name });
      else resolve({ kind: err.code === "ECONNREFUSED" ? "not-sent" : "no-answer", why: err.code ?? err.message, via: target.name });
    });
    req.end();
  });
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function inBatches<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

describe(
  "nothing lost: mixed load through two gateway processes while a gateway, Redis and Prosody are killed and restarted",
  { timeout: 900_000 },
  () => {
    const teardown = new Teardown();
    const book = new DeviceBook();
    let redis: RedisServer;
    let prosody: ProsodyServer;
    let fleet: Fleet;
    let lb: HaproxyServer;
    let a: GatewayInstance;
    let b: GatewayInstance;
    let lbTarget: Target;
    const lbAgent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS * 2 });
    let logDir = "";
    const timeline: string[] = [];
    /**
     * When each gateway instance was SIGKILLed, and until when HAProxy may still have sent it requests: until it
     * reported the instance DOWN, or the next incarnation was up if that came first (Infinity until one is seen).
     */
    const gatewayKills: Array<{ at: number; until: number }> = [];
    /** Every disruption: what, and when. */
    const disruptions: Array<{ at: number; what: string }> = [];
    let load: Load | undefined;
    let asyncResults: AsyncResult[] = [];
    let keyRetries: Array<{ done: Done; first: Answer; again: Sent }> = [];

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

      fleet = teardown.stopLater("fleet", await startFleet(prosody, DEVICES, (id) => book.handler(id)));
      lb = teardown.stopLater(
        "haproxy",
        await startHaproxy([
          { name: a.name, port: a.port },
          { name: b.name, port: b.port },
        ]),
      );
      teardown.add("client sockets", () => lbAgent.destroy());
      lbTarget = { name: "lb", port: lb.port, agent: lbAgent };
      // HAProxy starts with every server half UP: wait for its checks to find the serving instance and the standby.
      await pollUntil(
        "ga UP and the standby DOWN in HAProxy",
        async () => {
          const states = await lb.serverStates();
          return states[a.name] === "UP" && states[b.name] === "DOWN";
        },
        { timeoutMs: 30_000 },
      );
    });
    after(() => teardown.run());

    let polls = 0;

    /**
     * Polls GET /requests/{id}, on one instance and the other in turn, until each request has settled (then
     * reads it from the other instance too) or is lost: 404, or still pending well past every bound that
     * applies (the client's retries, the request's deadline, the offline queue's TTL).
     */
    async function settle(results: AsyncResult[]): Promise<void> {
      const boundOf = (r: AsyncResult): number => r.acceptedAt + RETRY_WINDOW_MS + REQUEST_TIMEOUT_MS + QUEUE_TTL_S * 1000 + 5_000;
      for (;;) {
        const open = results.filter((r) => !r.result && !r.lost);
        if (open.length === 0) return;
        await inBatches(open, 8, async (r) => {
          const [first, second] = r.polls % 2 === 0 ? [a.target, b.target] : [b.target, a.target];
          r.polls++;
          const got = await readResult(first, r.done.spec, r.id, `poll${++polls}`);
          if (got === "pending" || got.kind === "no-answer" || got.kind === "not-sent") {
            if (now() > boundOf(r)) r.lost = got === "pending" ? "still pending at the bound" : `no answer: ${got.why}`;
            return;
          }
          if (got.kind === "error" && got.code === "GW_UNKNOWN_REQUEST") {
            r.lost = "404 GW_UNKNOWN_REQUEST";
            return;
          }
          r.result = got;
          const other = await readResult(second, r.done.spec, r.id, `poll${++polls}`);
          r.other = other === "pending" ? { kind: "bad", why: "pending on the other instance after it settled", via: second.name } : other;
        });
        if (results.some((x) => !x.result && !x.lost)) await pause(200);
      }
    }

    /** The disruptions a request ran into (from its start to its deadline), for messages and figures. */
    function ranInto(startedAt: number, withTimes = true): string {
      const hits = disruptions.filter((d) => d.at >= startedAt - 100 && d.at <= startedAt + REQUEST_TIMEOUT_MS);
      if (hits.length === 0) return "no disruption";
      return hits.map((d) => (withTimes ? `${d.what} +${d.at - startedAt} ms` : d.what.replace(/^#\d+ /, ""))).join(", then ");
    }

    /** The instance holding the component (ready), if any. */
    async function serving(): Promise<GatewayInstance | undefined> {
      for (const g of [a, b]) if ((await g.readiness())?.status === 200) return g;
      return undefined;
    }

    /** True once a probe through HAProxy reaches every device and comes back with its own token. */
    async function everyDeviceServes(): Promise<boolean> {
      const results = await Promise.all(
        DEVICES.map(async (device) => {
          const token = `probe-${randomBytes(4).toString("hex")}`;
          const spec: Spec = { seq: -1, token, device, method: "GET", path: `/probe/${token}`, async: false, replay: false };
          return attempt(lbTarget, spec, token);
        }),
      );
      return results.every((r) => r.kind === "device");
    }

    /** Waits (bounded) until the devices are working on a keyed request, so that the disruption catches one. */
    async function keyedInFlight(label: string): Promise<void> {
      const found = await pollUntil(`${label}: a keyed request in flight`, () => book.keyedInFlight > 0 && book.inFlight > 1, {
        timeoutMs: 5_000,
        intervalMs: 2,
      }).catch(() => false);
      if (!found) timeline.push(`${label}: no keyed request was in flight at the disruption`);
    }

    async function disrupt(label: string, action: () => Promise<string>): Promise<void> {
      const l = load as Load;
      await keyedInFlight(label);
      const at = now();
      disruptions.push({ at, what: label });
      const inFlight = book.inFlight;
      const keyed = book.keyedInFlight;
      const what = await action();
      const backAt = now();
      await pollUntil(`${label}: every device served again through HAProxy`, everyDeviceServes, { timeoutMs: 90_000, intervalMs: 100 });
      const recoveredAt = now();
      await pollUntil(`${label}: load served again`, () => l.servedSince(recoveredAt) >= SERVED_BETWEEN, { timeoutMs: 60_000 });
      timeline.push(
        `${label} at ${at} ms (${inFlight} requests at the devices, ${keyed} keyed): ${what}; restarted +${backAt - at} ms; every device served +${recoveredAt - at} ms`,
      );
    }

    it(
      "answers every request exactly once, with its own reply or a catalogue error, through the disruptions",
      { timeout: 600_000 },
      async () => {
        const l = (load = new Load(lbTarget, [a.target, b.target]));
        l.start();
        try {
          await pollUntil("load warmed up", () => l.servedSince(0) >= 60, { timeoutMs: 60_000 });

          for (let round = 1; round <= ROUNDS; round++) {
            await disrupt(`#${round} gateway SIGKILL`, async () => {
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

            await disrupt(`#${round} redis SIGKILL`, async () => {
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
                answerLog.filter((x) => x.at >= killedAt && x.answer.kind === "error" && x.answer.code === "GW_STORE_UNAVAILABLE").length;
              await pollUntil("the load to meet the outage", () => storeErrors() >= 3 && book.inFlight === 0, { timeoutMs: 3_000 }).catch(
                () => undefined,
              );
              const downMs = now() - killedAt;
              await redis.restart(); // same port, same dir: its append-only file
              return `down ${downMs} ms (${storeErrors()} answers 503 GW_STORE_UNAVAILABLE meanwhile), restarted with its data`;
            });

            await disrupt(`#${round} prosody SIGKILL`, async () => {
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
          await l.stop();
        }

        const bad = l.done.flatMap((d) => [d, ...d.replays]).filter((s) => s.attempts.some((x) => x.kind === "bad"));
        assert.deepEqual(
          bad.slice(0, 20).map(describeSent),
          [],
          `${bad.length} requests got an answer that is neither their own reply nor a catalogue error`,
        );
        const unanswered = l.done
          .flatMap((d) => [d, ...d.replays])
          .filter(
            (s) =>
              (s.final.kind === "no-answer" || s.final.kind === "not-sent") &&
              !(UNSAFE.has(s.spec.method) && !s.spec.key && s.final.kind === "no-answer"),
          );
        assert.deepEqual(
          unanswered.slice(0, 20).map(describeSent),
          [],
          `${unanswered.length} requests got no answer at all after the client's retries: lost`,
        );
        // Connections are lost only with the instance that held them: every reset, or HAProxy 502/504, was in
        // flight between a gateway instance's kill and HAProxy's DOWN for it (Redis and Prosody outages are
        // answered, not dropped). Not only at the kill: until HAProxy has seen the instance die it may still send
        // a request over an idle connection to it, and how long that takes depends on how busy the machine is.
        const resets = answerLog.filter(
          (x) => x.answer.kind === "no-answer" && !gatewayKills.some((k) => x.sentAt <= k.until && k.at <= x.at),
        );
        const downs = gatewayKills.map((k) => `${k.at}-${k.until}`).join(", ");
        assert.deepEqual(
          resets.slice(0, 20).map((x) => `#${x.spec.seq} ${x.spec.method} sent at ${x.sentAt} ms: ${answerKey(x.answer)} at ${x.at} ms`),
          [],
          `connections lost with no instance down (killed, then DOWN in HAProxy or back: ${downs} ms)`,
        );
      },
    );

    it(
      "settles every accepted asynchronous request: the same result on both instances, never 404, never pending forever",
      { timeout: 180_000 },
      async () => {
        const l = load;
        assert.ok(l, "the load ran");
        const accepted = l.done.flatMap((d) =>
          [d, ...d.replays].flatMap((s) =>
            s.attempts
              .filter((x): x is Extract<Answer, { kind: "accepted" }> => x.kind === "accepted")
              .map((x) => ({ done: d, id: x.id, acceptedAt: s.startedAt })),
          ),
        );
        asyncResults = accepted.map((x) => ({ ...x, polls: 0 }));
        await settle(asyncResults);
        const lost = asyncResults.filter((r) => r.lost);
        assert.deepEqual(
          lost.slice(0, 20).map((r) => `${describeSent(r.done)}: ${r.id} ${r.lost}`),
          [],
          `${lost.length} accepted asynchronous requests were lost`,
        );
        const bad = asyncResults.filter((r) => r.result?.kind === "bad" || r.other?.kind === "bad");
        assert.deepEqual(
          bad.slice(0, 20).map((r) => `${describeSent(r.done)}: ${answerKey(r.result as Answer)} / ${answerKey(r.other as Answer)}`),
          [],
          "an asynchronous result that is not its own reply or a catalogue error",
        );
        const differ = asyncResults.filter((r) => r.result && r.other && !sameOutcome(r.result, r.other));
        assert.deepEqual(
          differ.slice(0, 20).map((r) => `${describeSent(r.done)}: ${answerKey(r.result as Answer)} vs ${answerKey(r.other as Answer)}`),
          [],
          "both instances report the same result",
        );
      },
    );

    it(
      "never actuates a keyed request twice: not under the chaos, not when every key is sent again after it",
      { timeout: 270_000 },
      async () => {
        const l = load;
        assert.ok(l, "the load ran");
        // Device side: every key reached its device at most once, every unkeyed unsafe request at most once.
        const twice = [...book.actuationsByKey].filter(([, n]) => n > 1);
        assert.deepEqual(twice, [], "keyed actuations that reached the device twice");
        const unsafeTwice = l.done.filter((d) => UNSAFE.has(d.spec.method) && (book.hitsByToken.get(d.spec.token) ?? 0) > 1);
        assert.deepEqual(unsafeTwice.map(describeSent), [], "unsafe requests that reached their device twice");
        // Replays right after the answer, during the load: the kept outcome too (or 409 while it still ran).
        const replayDiffers = l.done.filter((d) =>
          d.replays.some((r) => keptOutcome(d.final) && keptOutcome(r.final) && !sameOutcome(d.final, r.final)),
        );
        assert.deepEqual(
          replayDiffers.slice(0, 20).map((d) => `${describeSent(d)} | replay ${describeSent(d.replays[0] as Sent)}`),
          [],
          "a replay with the same key returns the kept outcome",
        );

        // Every keyed request, sent once more now (as by a client that never got, or lost, its answer), to one
        // instance or the other. What the key answered first: the first kept outcome seen, or the async result.
        const keyed = l.done.filter((d) => d.spec.key);
        // Not before every keyed request's deadline and the grace after it: a key whose outcome was never
        // recorded answers 409 until then, and its kept "outcome unknown" after.
        const lastDeadline = Math.max(
          ...keyed.flatMap((d) => [d, ...d.replays]).map((x) => x.endedAt + REQUEST_TIMEOUT_MS + RUNNING_GRACE_MS),
        );
        if (now() < lastDeadline) await pause(lastDeadline - now());
        const resultOf = new Map(asyncResults.map((r) => [r.done, r.result]));
        keyRetries = [];
        await inBatches(keyed, 8, async (d) => {
          const [x, y] = d.spec.seq % 2 === 0 ? [b.target, a.target] : [a.target, b.target];
          const seen = [d, ...d.replays].map((s) => s.final);
          const asyncResult = resultOf.get(d);
          if (asyncResult) seen.push(asyncResult);
          const first = seen.find(keptOutcome) ?? d.final;
          keyRetries.push({ done: d, first, again: await send(d.spec, [x, y], "k", 6_000) });
        });
        // A key whose first outcome was not kept runs anew; asynchronous ones are accepted again: settle those too.
        const acceptedAgain: AsyncResult[] = keyRetries.flatMap((k) =>
          k.again.attempts.flatMap((x) =>
            x.kind === "accepted" ? [{ done: k.done, id: x.id, acceptedAt: k.again.startedAt, polls: 0 }] : [],
          ),
        );
        await settle(acceptedAgain);
        assert.deepEqual(
          acceptedAgain
            .filter((r) => r.lost || r.result?.kind === "bad")
            .map((r) => `${describeSent(r.done)}: ${r.lost ?? answerKey(r.result as Answer)}`),
          [],
          "keys sent again and accepted asynchronously settle",
        );
        asyncResults.push(...acceptedAgain);
        const actuatedAgain = [...book.actuationsByKey].filter(([, n]) => n > 1);
        assert.deepEqual(actuatedAgain, [], "sending a key again after the chaos must not reach the device again");
        const bad = keyRetries.filter((k) => k.again.attempts.some((x) => x.kind === "bad"));
        assert.deepEqual(
          bad.slice(0, 20).map((k) => describeSent(k.again)),
          [],
          "answers to keys sent again that are neither their own reply nor a catalogue error",
        );
        const differ = keyRetries.filter((k) => keptOutcome(k.first) && keptOutcome(k.again.final) && !sameOutcome(k.first, k.again.final));
        assert.deepEqual(
          differ.slice(0, 20).map((k) => `${describeSent(k.done)} | first ${answerKey(k.first)} | again ${answerKey(k.again.final)}`),
          [],
          "a key answers again with the outcome it first gave",
        );
      },
    );

    it("answers every key again once its request is over: none stays 409 GW_IDEMPOTENCY_IN_FLIGHT past its deadline", () => {
      assert.ok(load, "the load ran");
      const stuck = keyRetries.filter((k) => k.again.final.kind === "error" && k.again.final.code === "GW_IDEMPOTENCY_IN_FLIGHT");
      assert.deepEqual(
        stuck
          .slice(0, 20)
          .map(
            (k) =>
              `${describeSent(k.done)} | ran into: ${ranInto(k.done.startedAt)} | sent again at ${k.again.startedAt} ms: ${k.again.attempts.length} × ${answerKey(k.again.final)}`,
          ),
        [],
        `${stuck.length} Idempotency-Keys still answer 409 GW_IDEMPOTENCY_IN_FLIGHT long after their request's deadline`,
      );
    });

    it("prints the figures", async (t) => {
      const l = load;
      assert.ok(l, "the load ran");
      const all = l.done;
      const sends = all.flatMap((d) => [d, ...d.replays]);
      const attempts = sends.reduce((s, x) => s + x.attempts.length, 0);
      const ambiguous = all.filter((d) => d.final.kind === "no-answer" && UNSAFE.has(d.spec.method) && !d.spec.key);
      const asyncReplies = asyncResults.filter((r) => r.result?.kind === "device").length;
      const unanswered = sends.filter(
        (s) => (s.final.kind === "no-answer" || s.final.kind === "not-sent") && !ambiguous.includes(s as Done),
      ).length;
      const asyncLost = asyncResults.filter((r) => r.lost).length;
      const keysStuck = keyRetries.filter(
        (k) => k.again.final.kind === "error" && k.again.final.code === "GW_IDEMPOTENCY_IN_FLIGHT",
      ).length;
      const lost = unanswered + asyncLost + keysStuck;
      const duplicates =
        [...book.actuationsByKey.values()].filter((n) => n > 1).length +
        all.filter((d) => UNSAFE.has(d.spec.method) && !d.spec.key && (book.hitsByToken.get(d.spec.token) ?? 0) > 1).length;
      const bad =
        sends.filter((s) => s.attempts.some((x) => x.kind === "bad")).length +
        asyncResults.filter((r) => r.result?.kind === "bad" || r.other?.kind === "bad").length;
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

      const lines = [
        `requests ${all.length} (${Object.entries(tally(all, (d) => d.spec.method))
          .map(([k, v]) => `${k} ${v}`)
          .join(
            ", ",
          )}; async ${all.filter((d) => d.spec.async).length}, keyed ${all.filter((d) => d.spec.key).length}, replayed ${all.filter((d) => d.replays.length > 0).length}); attempts ${attempts}`,
        `final answers: ${Object.entries(tally(all, (d) => answerKey(d.final)))
          .map(([k, v]) => `${k}: ${v}`)
          .join(", ")}`,
        `device replies ${all.filter((d) => d.final.kind === "device").length} sync + ${asyncReplies} async; asynchronous results: ${
          Object.entries(tally(asyncResults, (r) => (r.result ? answerKey(r.result) : `lost: ${r.lost ?? "?"}`)))
            .map(([k, v]) => `${k}: ${v}`)
            .join(", ") || "none"
        }`,
        `errors by code (every attempt): ${
          Object.entries(
            tally(
              sends.flatMap((s) => s.attempts).filter((x) => x.kind === "error"),
              answerKey,
            ),
          )
            .map(([k, v]) => `${k}: ${v}`)
            .join(", ") || "none"
        }`,
        `no answer from an instance (every attempt): ${
          Object.entries(
            tally(
              sends.flatMap((s) => s.attempts).filter((x) => x.kind === "no-answer" || x.kind === "not-sent"),
              answerKey,
            ),
          )
            .map(([k, v]) => `${k}: ${v}`)
            .join(", ") || "none"
        }`,
        `keys sent again after the chaos: ${Object.entries(tally(keyRetries, (k) => answerKey(k.again.final)))
          .map(([k, v]) => `${k}: ${v}`)
          .join(", ")}`,
        `keys stuck in 409, by the disruption their request ran into: ${JSON.stringify(
          tally(
            keyRetries.filter((k) => k.again.final.kind === "error" && k.again.final.code === "GW_IDEMPOTENCY_IN_FLIGHT"),
            (k) => `${k.done.spec.async ? "async" : "sync"}: ${ranInto(k.done.startedAt, false)}`,
          ),
        )}`,
        `asynchronous results 504 GW_DEVICE_TIMEOUT though the request reached the device: ${asyncResults.filter((r) => r.result?.kind === "error" && r.result.code === "GW_DEVICE_TIMEOUT" && (book.hitsByToken.get(r.done.spec.token) ?? 0) > 0).length}`,
        `ambiguous (unkeyed unsafe, connection lost) ${ambiguous.length}${ambiguous.length ? `: ${ambiguous.map((d) => `#${d.spec.seq} reached device ${book.hitsByToken.get(d.spec.token) ?? 0}x`).join(", ")}` : ""}`,
        `device requests by incarnation (access logs): through HAProxy ${JSON.stringify(servedBy)}; replays sent directly ${JSON.stringify(directly)}; GET /requests/{id} ${JSON.stringify(polled)}`,
        `warnings and errors logged: ${JSON.stringify(events)}`,
        ...timeline,
        `LOST ${lost} (unanswered ${unanswered}, async results lost ${asyncLost}, keys stuck in 409 ${keysStuck}), DUPLICATES ${duplicates}, WRONG ${bad}, AMBIGUOUS ${ambiguous.length}`,
      ];
      console.log(lines.map((line) => `nothing-lost | ${line}`).join("\n"));
      t.diagnostic(`gateway logs: ${logDir}, HAProxy's: ${lb.dir} (kept with HARNESS_KEEP_DIRS=1)`);
      t.diagnostic(`nothing-lost: ${all.length} requests, LOST ${lost}, DUPLICATES ${duplicates}, WRONG ${bad}`);
    });
  },
);

/** An outcome the gateway keeps under the key: a device reply, or an error that does not prove "not reached". */
function keptOutcome(a: Answer): boolean {
  return a.kind === "device" || (a.kind === "error" && !NOT_KEPT.has(a.code));
}
