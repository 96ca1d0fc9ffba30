// One "nothing lost" run: the devices' book, the client, the load, the disruptions with their recovery times,
// and the ledger checked afterwards (every request exactly one answer, no key acting twice, every accepted
// asynchronous request settled the same on both instances). The test files say which faults to inject;
// this says what "nothing lost" means, once.
import { randomBytes } from "node:crypto";
import { setTimeout as pause } from "node:timers/promises";
import { pollUntil } from "../../../local-stack/ports.js";
import { answerKey, keptOutcome, sameOutcome, type Answer } from "./answers.js";
import { LedgerClient, type ClientBounds, type Sent, type Target } from "./client.js";
import { DeviceBook } from "./device-book.js";
import { Load, type Done, type LoadShape } from "./load.js";
import { UNSAFE, type Spec } from "./requests.js";

/** Unsafe methods that are not idempotent either (RFC 9110 §9.2.2): a second delivery is a second action. */
const NOT_IDEMPOTENT: ReadonlySet<string> = new Set(["POST", "PATCH"]);

export interface LedgerOptions extends ClientBounds, LoadShape {
  /** How long a `/slow/…` request keeps its device busy. */
  slowMs: number;
  /** The gateway's deadline per exchange (GATEWAY_REQUEST_TIMEOUT_MS). */
  requestTimeoutMs: number;
  /** How long an asynchronous request may wait in the offline queue (GATEWAY_QUEUE_TTL_S). */
  queueTtlS: number;
  /** Until then after its deadline, a key whose outcome was never recorded still answers 409 (idempotency.ts). */
  runningGraceMs: number;
  /** Requests served after each recovery before the next disruption. */
  servedBetween: number;
}

export interface AsyncResult {
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

export interface KeyRetry {
  done: Done;
  first: Answer;
  again: Sent;
}

/** A disruption and how long the service took to come back from it. */
export interface Recovery {
  label: string;
  at: number;
  /** Until every device answered a probe through the load balancer again. */
  recoveredMs: number;
}

export class LedgerRun {
  readonly book: DeviceBook;
  readonly client: LedgerClient;
  readonly disruptions: Array<{ at: number; what: string }> = [];
  readonly recoveries: Recovery[] = [];
  readonly timeline: string[] = [];
  asyncResults: AsyncResult[] = [];
  keyRetries: KeyRetry[] = [];
  private loadRun: Load | undefined;
  private polls = 0;
  private targets: { lb: Target; direct: readonly [Target, Target] } | undefined;

  constructor(readonly opts: LedgerOptions) {
    this.book = new DeviceBook(opts.slowMs);
    this.client = new LedgerClient(opts);
  }

  now(): number {
    return this.client.now();
  }

  get load(): Load {
    if (!this.loadRun) throw new Error("the load has not run");
    return this.loadRun;
  }

  /** Starts the load through `lb` (replays and reads go to the two instances directly) and waits (bounded) until it is served. */
  async startLoad(lb: Target, direct: readonly [Target, Target]): Promise<void> {
    this.targets = { lb, direct };
    this.loadRun = new Load(this.client, this.opts, lb, direct);
    this.loadRun.start();
    const l = this.loadRun;
    await pollUntil("load warmed up", () => l.servedSince(0) >= 60, { timeoutMs: 60_000 });
  }

  async stopLoad(): Promise<void> {
    await this.loadRun?.stop();
  }

  /**
   * Injects one fault while the devices work on a keyed request, then waits until every device answers through
   * the load balancer and the load is served again; the time to recover is recorded and printed.
   */
  async disrupt(label: string, action: () => Promise<string>): Promise<void> {
    const l = this.load;
    await this.keyedInFlight(label);
    const at = this.now();
    this.disruptions.push({ at, what: label });
    const inFlight = this.book.inFlight;
    const keyed = this.book.keyedInFlight;
    const what = await action();
    const backAt = this.now();
    await pollUntil(`${label}: every device served again through the load balancer`, () => this.everyDeviceServes(), {
      timeoutMs: 90_000,
      intervalMs: 100,
    });
    const recoveredAt = this.now();
    this.recoveries.push({ label, at, recoveredMs: recoveredAt - at });
    await pollUntil(`${label}: load served again`, () => l.servedSince(recoveredAt) >= this.opts.servedBetween, { timeoutMs: 60_000 });
    this.timeline.push(
      `${label} at ${at} ms (${inFlight} requests at the devices, ${keyed} keyed): ${what}; action done +${backAt - at} ms; every device served +${recoveredAt - at} ms`,
    );
  }

  /** Every request sent, with its replays. */
  sends(): Sent[] {
    return this.load.done.flatMap((d) => [d, ...d.replays]);
  }

  /** Requests with an answer that is neither their own reply nor a catalogue error. */
  wrongAnswers(): string[] {
    return this.sends()
      .filter((s) => s.attempts.some((x) => x.kind === "bad"))
      .map(describeSent);
  }

  /** Requests that never got an answer from the gateway (an unkeyed unsafe request with a lost connection is ambiguous, not lost). */
  unanswered(): string[] {
    return this.sends()
      .filter((s) => (s.final.kind === "no-answer" || s.final.kind === "not-sent") && !this.ambiguous(s))
      .map(describeSent);
  }

  /** Connections lost with no instance down: every "no answer" must fall inside one of `windows` (ms). */
  resetsOutside(windows: ReadonlyArray<{ at: number; until: number }>): string[] {
    return this.client.answerLog
      .filter((x) => x.answer.kind === "no-answer" && !windows.some((k) => x.sentAt <= k.until && k.at <= x.at))
      .map((x) => `#${x.spec.seq} ${x.spec.method} sent at ${x.sentAt} ms: ${answerKey(x.answer)} at ${x.at} ms`);
  }

  /**
   * Polls GET /requests/{id}, on one instance and the other in turn, until each accepted asynchronous request
   * has settled (then reads it from the other instance too) or is lost: 404, or still pending well past every
   * bound that applies (the client's retries, the request's deadline, the offline queue's TTL).
   */
  async settleAsync(): Promise<void> {
    const accepted = this.load.done.flatMap((d) =>
      [d, ...d.replays].flatMap((s) =>
        s.attempts
          .filter((x): x is Extract<Answer, { kind: "accepted" }> => x.kind === "accepted")
          .map((x) => ({ done: d, id: x.id, acceptedAt: s.startedAt, polls: 0 })),
      ),
    );
    this.asyncResults = accepted;
    await this.settle(accepted);
  }

  /** Asynchronous requests lost, wrong, or read differently from the two instances. */
  asyncViolations(): { lost: string[]; wrong: string[]; differ: string[] } {
    const r = this.asyncResults;
    return {
      lost: r.filter((x) => x.lost).map((x) => `${describeSent(x.done)}: ${x.id} ${x.lost ?? ""}`),
      wrong: r
        .filter((x) => x.result?.kind === "bad" || x.other?.kind === "bad")
        .map((x) => `${describeSent(x.done)}: ${answerKey(x.result as Answer)} / ${answerKey(x.other as Answer)}`),
      differ: r
        .filter((x) => x.result && x.other && !sameOutcome(x.result, x.other))
        .map((x) => `${describeSent(x.done)}: ${answerKey(x.result as Answer)} vs ${answerKey(x.other as Answer)}`),
    };
  }

  /**
   * Keyed actuations that reached their device twice, and unkeyed POST/PATCH requests that did. An unkeyed PUT
   * or DELETE may reach its device twice by design: it is idempotent (RFC 9110 §9.2.2), and the gateway sends
   * such a request again when another instance's component connection closes (README, "Running several
   * instances"); those are counted apart (resentIdempotent).
   */
  duplicates(): string[] {
    const keyed = [...this.book.actuationsByKey].filter(([, n]) => n > 1).map(([k, n]) => `${k} × ${n}`);
    const unkeyed = this.load.done.filter((d) => NOT_IDEMPOTENT.has(d.spec.method) && !d.spec.key && this.hits(d) > 1).map(describeSent);
    return [...keyed, ...unkeyed];
  }

  /** Unkeyed PUT/DELETE requests that reached their device more than once (sent again, as designed). */
  resentIdempotent(): number {
    return this.load.done.filter((d) => UNSAFE.has(d.spec.method) && !NOT_IDEMPOTENT.has(d.spec.method) && !d.spec.key && this.hits(d) > 1)
      .length;
  }

  /** Keyed requests whose replay, right after their answer, did not return the kept outcome. */
  replaysDiffering(): string[] {
    return this.load.done
      .filter((d) => d.replays.some((r) => this.differs(d, d.final, r.final)))
      .map((d) => `${describeSent(d)} | replay ${describeSent(d.replays[0] as Sent)}`);
  }

  /**
   * Whether a key answered `later` where it first answered `first`, both kept outcomes. One exception, as the
   * README documents it: a request that ran into a Redis fault may have been answered while its outcome could
   * not be written, and not within its deadline and grace either (the store still away): its key then keeps
   * "outcome unknown" (504), never a second actuation.
   */
  private differs(d: Sent, first: Answer, later: Answer): boolean {
    if (!keptOutcome(first) || !keptOutcome(later) || sameOutcome(first, later)) return false;
    return !(later.kind === "error" && later.unrecorded && /redis/i.test(this.ranInto(d.startedAt, false)));
  }

  /**
   * Sends every keyed request once more (as by a client that never got, or lost, its answer), to one instance
   * or the other, after every keyed request's deadline and the grace after it; settles those accepted again.
   */
  async resendKeys(): Promise<void> {
    const keyed = this.load.done.filter((d) => d.spec.key);
    const lastDeadline = Math.max(
      0,
      ...keyed.flatMap((d) => [d, ...d.replays]).map((x) => x.endedAt + this.opts.requestTimeoutMs + this.opts.runningGraceMs),
    );
    if (this.now() < lastDeadline) await pause(lastDeadline - this.now());
    const resultOf = new Map(this.asyncResults.map((r) => [r.done, r.result]));
    const [a, b] = this.direct;
    this.keyRetries = [];
    await inBatches(keyed, 8, async (d) => {
      const seen = [d, ...d.replays].map((s) => s.final);
      const asyncResult = resultOf.get(d);
      if (asyncResult) seen.push(asyncResult);
      const first = seen.find(keptOutcome) ?? d.final;
      this.keyRetries.push({ done: d, first, again: await this.client.send(d.spec, d.spec.seq % 2 === 0 ? [b, a] : [a, b], "k", 6_000) });
    });
    // A key whose first outcome was not kept runs anew; asynchronous ones are accepted again: settle those too.
    const acceptedAgain: AsyncResult[] = this.keyRetries.flatMap((k) =>
      k.again.attempts.flatMap((x) => (x.kind === "accepted" ? [{ done: k.done, id: x.id, acceptedAt: k.again.startedAt, polls: 0 }] : [])),
    );
    await this.settle(acceptedAgain);
    this.asyncResults.push(...acceptedAgain);
  }

  /** Keys sent again whose answer is wrong, differs from the key's first kept outcome, or is still 409. */
  keyViolations(): { wrong: string[]; differ: string[]; stuck: string[] } {
    const k = this.keyRetries;
    return {
      wrong: k.filter((x) => x.again.attempts.some((y) => y.kind === "bad")).map((x) => describeSent(x.again)),
      differ: k
        .filter((x) => this.differs(x.done, x.first, x.again.final))
        .map((x) => `${describeSent(x.done)} | first ${answerKey(x.first)} | again ${answerKey(x.again.final)}`),
      stuck: this.stuckKeys().map(
        (x) =>
          `${describeSent(x.done)} | ran into: ${this.ranInto(x.done.startedAt)} | sent again at ${x.again.startedAt} ms: ${x.again.attempts.length} × ${answerKey(x.again.final)}`,
      ),
    };
  }

  /** The ledger's totals, and the lines to print (each to be prefixed by the caller). */
  figures(): { lost: number; duplicates: number; wrong: number; ambiguous: number; lines: string[] } {
    const all = this.load.done;
    const sends = this.sends();
    const attempts = sends.reduce((s, x) => s + x.attempts.length, 0);
    const ambiguous = all.filter((d) => this.ambiguous(d));
    const asyncReplies = this.asyncResults.filter((r) => r.result?.kind === "device").length;
    const unanswered = this.unanswered().length;
    const asyncLost = this.asyncResults.filter((r) => r.lost).length;
    const keysStuck = this.stuckKeys().length;
    const lost = unanswered + asyncLost + keysStuck;
    const duplicates = this.duplicates().length;
    const wrong = this.wrongAnswers().length + this.asyncResults.filter((r) => r.result?.kind === "bad" || r.other?.kind === "bad").length;
    const list = (counts: Record<string, number>): string =>
      Object.entries(counts)
        .map(([k, v]) => `${k}: ${v}`)
        .join(", ") || "none";
    const methods = Object.entries(tally(all, (d) => d.spec.method))
      .map(([k, v]) => `${k} ${v}`)
      .join(", ");
    const lines = [
      `requests ${all.length} (${methods}; async ${all.filter((d) => d.spec.async).length}, keyed ${all.filter((d) => d.spec.key).length}, replayed ${all.filter((d) => d.replays.length > 0).length}); attempts ${attempts}`,
      `final answers: ${list(tally(all, (d) => answerKey(d.final)))}`,
      `device replies ${all.filter((d) => d.final.kind === "device").length} sync + ${asyncReplies} async; asynchronous results: ${list(
        tally(this.asyncResults, (r) => (r.result ? answerKey(r.result) : `lost: ${r.lost ?? "?"}`)),
      )}`,
      `errors by code (every attempt): ${list(
        tally(
          sends.flatMap((s) => s.attempts).filter((x) => x.kind === "error"),
          answerKey,
        ),
      )}`,
      `no answer from an instance (every attempt): ${list(
        tally(
          sends.flatMap((s) => s.attempts).filter((x) => x.kind === "no-answer" || x.kind === "not-sent"),
          answerKey,
        ),
      )}`,
      `keys sent again after the faults: ${list(tally(this.keyRetries, (k) => answerKey(k.again.final)))}`,
      `keys stuck in 409, by the disruption their request ran into: ${JSON.stringify(
        tally(this.stuckKeys(), (k) => `${k.done.spec.async ? "async" : "sync"}: ${this.ranInto(k.done.startedAt, false)}`),
      )}`,
      `asynchronous results 504 GW_DEVICE_TIMEOUT though the request reached the device: ${
        this.asyncResults.filter(
          (r) =>
            r.result?.kind === "error" && r.result.code === "GW_DEVICE_TIMEOUT" && (this.book.hitsByToken.get(r.done.spec.token) ?? 0) > 0,
        ).length
      }`,
      `unkeyed PUT/DELETE that reached their device twice (sent again when an instance's component connection closed, by design): ${this.resentIdempotent()}`,
      `ambiguous (unkeyed unsafe, connection lost) ${ambiguous.length}${
        ambiguous.length
          ? `: ${ambiguous.map((d) => `#${d.spec.seq} reached device ${this.book.hitsByToken.get(d.spec.token) ?? 0}x`).join(", ")}`
          : ""
      }`,
      ...this.timeline,
      `time to recover: ${this.recoveries.map((r) => `${r.label} ${r.recoveredMs} ms`).join(", ") || "no disruption"}`,
      `LOST ${lost} (unanswered ${unanswered}, async results lost ${asyncLost}, keys stuck in 409 ${keysStuck}), DUPLICATES ${duplicates}, WRONG ${wrong}, AMBIGUOUS ${ambiguous.length}`,
    ];
    return { lost, duplicates, wrong, ambiguous: ambiguous.length, lines };
  }

  /** The disruptions a request ran into (from its start to its deadline), for messages and figures. */
  ranInto(startedAt: number, withTimes = true): string {
    const hits = this.disruptions.filter((d) => d.at >= startedAt - 100 && d.at <= startedAt + this.opts.requestTimeoutMs);
    if (hits.length === 0) return "no disruption";
    return hits.map((d) => (withTimes ? `${d.what} +${d.at - startedAt} ms` : d.what.replace(/^#\d+ /, ""))).join(", then ");
  }

  /** True once a probe through the load balancer reaches every device and comes back with its own token. */
  async everyDeviceServes(): Promise<boolean> {
    const results = await Promise.all(
      this.opts.devices.map(async (device) => {
        const token = `probe-${randomBytes(4).toString("hex")}`;
        const spec: Spec = { seq: -1, token, device, method: "GET", path: `/probe/${token}`, async: false, replay: false };
        return this.client.attempt(this.lb, spec, token);
      }),
    );
    return results.every((r) => r.kind === "device");
  }

  private get lb(): Target {
    if (!this.targets) throw new Error("the load has not run");
    return this.targets.lb;
  }

  private get direct(): readonly [Target, Target] {
    if (!this.targets) throw new Error("the load has not run");
    return this.targets.direct;
  }

  private hits(d: Done): number {
    return this.book.hitsByToken.get(d.spec.token) ?? 0;
  }

  private ambiguous(s: Sent): boolean {
    return s.final.kind === "no-answer" && UNSAFE.has(s.spec.method) && !s.spec.key;
  }

  private stuckKeys(): KeyRetry[] {
    return this.keyRetries.filter((k) => k.again.final.kind === "error" && k.again.final.code === "GW_IDEMPOTENCY_IN_FLIGHT");
  }

  /** Waits (bounded) until the devices are working on a keyed request, so that the disruption catches one. */
  private async keyedInFlight(label: string): Promise<void> {
    const found = await pollUntil(`${label}: a keyed request in flight`, () => this.book.keyedInFlight > 0 && this.book.inFlight > 1, {
      timeoutMs: 5_000,
      intervalMs: 2,
    }).catch(() => false);
    if (!found) this.timeline.push(`${label}: no keyed request was in flight at the disruption`);
  }

  private async settle(results: AsyncResult[]): Promise<void> {
    const o = this.opts;
    const boundOf = (r: AsyncResult): number => r.acceptedAt + o.retryWindowMs + o.requestTimeoutMs + o.queueTtlS * 1000 + 5_000;
    const [a, b] = this.direct;
    for (;;) {
      const open = results.filter((r) => !r.result && !r.lost);
      if (open.length === 0) return;
      await inBatches(open, 8, async (r) => {
        const [first, second] = r.polls % 2 === 0 ? [a, b] : [b, a];
        r.polls++;
        const got = await this.client.readResult(first, r.done.spec, r.id, `poll${++this.polls}`);
        if (got === "pending" || got.kind === "no-answer" || got.kind === "not-sent") {
          if (this.now() > boundOf(r)) r.lost = got === "pending" ? "still pending at the bound" : `no answer: ${got.why}`;
          return;
        }
        if (got.kind === "error" && got.code === "GW_UNKNOWN_REQUEST") {
          r.lost = "404 GW_UNKNOWN_REQUEST";
          return;
        }
        r.result = got;
        const other = await this.client.readResult(second, r.done.spec, r.id, `poll${++this.polls}`);
        r.other = other === "pending" ? { kind: "bad", why: "pending on the other instance after it settled", via: second.name } : other;
      });
      if (results.some((x) => !x.result && !x.lost)) await pause(200);
    }
  }
}

export function tally<T>(items: readonly T[], keyOf: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) {
    const k = keyOf(item);
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

export function describeSent(s: Sent): string {
  const { spec } = s;
  const flags = [spec.async ? "async" : "", spec.key ? "keyed" : ""].filter(Boolean).join(",");
  const attempts = s.attempts.map((a) => `${a.via}:${answerKey(a)}`).join(" → ");
  return `#${spec.seq} ${spec.method} ${spec.device}${spec.path}${flags ? ` [${flags}]` : ""} at ${s.startedAt} ms: ${attempts}`;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function inBatches<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}
