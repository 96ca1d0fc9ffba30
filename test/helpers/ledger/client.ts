// The client of a "nothing lost" run, with the policy of a client behind a load balancer:
//   - an answer from the gateway (device reply or catalogue error) is final, except that a keyed request is
//     sent again, same key and same request, on 409 GW_IDEMPOTENCY_IN_FLIGHT and on the errors that prove the
//     device was not reached (KEYED_RETRY), as the README says such outcomes free the key;
//   - "not sent" (HAProxy's own 503 "no server is available", a refused connection): nothing reached any
//     instance, so any request is sent again;
//   - "no answer" (a reset or closed connection, HAProxy's own 502/504: the instance holding it was killed):
//     GET/HEAD/OPTIONS and keyed requests are sent again; an unkeyed POST/PUT/PATCH/DELETE is not, since the
//     device may or may not have acted: it is counted as AMBIGUOUS;
//   - retries are bounded (attempts and time); a request that never got any answer from the gateway is LOST.
import http from "node:http";
import { setTimeout as pause } from "node:timers/promises";
import { classify, type Answer } from "./answers.js";
import { KEYED_RETRY, UNSAFE, type Spec } from "./requests.js";

/** Where a request goes: HAProxy ("lb") or one instance directly. */
export interface Target {
  name: string;
  port: number;
  agent: http.Agent;
}

export interface ClientBounds {
  /** A request the gateway has not answered by then is a hang (the gateway answers by its deadline). */
  clientTimeoutMs: number;
  /** How long, and how often, the client keeps trying one request. */
  retryWindowMs: number;
  maxAttempts: number;
}

export interface Sent {
  spec: Spec;
  startedAt: number;
  /** When its last attempt was answered (or given up). */
  endedAt: number;
  attempts: Answer[];
  /** The answer the client keeps: the last attempt's, or, when retries ran out on lost connections, the
   * gateway's last answer before them; "no-answer"/"not-sent" only when the gateway never answered at all. */
  final: Answer;
}

export function wantsRetry(spec: Spec, a: Answer): boolean {
  if (a.kind === "not-sent") return true;
  if (a.kind === "no-answer") return !UNSAFE.has(spec.method) || spec.key !== undefined;
  if (a.kind === "error") return spec.key !== undefined && KEYED_RETRY.has(a.code);
  return false;
}

export class LedgerClient {
  private readonly t0 = performance.now();
  /** Every attempt's answer, with when it came: what the load met during a disruption. */
  readonly answerLog: Array<{ sentAt: number; at: number; answer: Answer; spec: Spec }> = [];

  constructor(readonly bounds: ClientBounds) {}

  /** Milliseconds since the client was made: one clock for requests and disruptions. */
  now(): number {
    return Math.round(performance.now() - this.t0);
  }

  /** Sends `spec` until it has an answer the client keeps (see the policy above), cycling through `targets`. */
  async send(spec: Spec, targets: readonly Target[], label: string, windowMs = this.bounds.retryWindowMs): Promise<Sent> {
    const startedAt = this.now();
    const attempts: Answer[] = [];
    for (let n = 1; ; n++) {
      const target = targets[(n - 1) % targets.length] as Target;
      const sentAt = this.now();
      const a = await this.attempt(target, spec, `${spec.token}.${label}${n}`);
      attempts.push(a);
      this.answerLog.push({ sentAt, at: this.now(), answer: a, spec });
      const delayMs = Math.min(1_000, 50 * 2 ** Math.min(n, 5)) * (0.5 + Math.random() / 2);
      if (!wantsRetry(spec, a) || n >= this.bounds.maxAttempts || this.now() + delayMs > startedAt + windowMs) {
        // Out of retries after a lost connection: what the client keeps is the gateway's last word, if any.
        const heard = attempts.filter((x) => x.kind !== "no-answer" && x.kind !== "not-sent");
        return { spec, startedAt, endedAt: this.now(), attempts, final: heard[heard.length - 1] ?? a };
      }
      await pause(delayMs);
    }
  }

  /** One attempt of `spec` at `target`, bounded by the client's own timeout. */
  attempt(target: Target, spec: Spec, requestId: string): Promise<Answer> {
    const headers: Record<string, string> = { "X-Request-Id": requestId };
    if (spec.async) headers.Prefer = "respond-async";
    if (spec.key) headers["Idempotency-Key"] = spec.key;
    if (spec.body !== undefined) headers["Content-Type"] = "application/json";
    return this.exchange(target, spec.method, `/devices/${spec.device}${spec.path}`, headers, spec.body, (res, body) => {
      const status = res.statusCode ?? 0;
      // HAProxy's own pages (HTML, no X-Request-Id; no body at all for HEAD): the instance did not answer.
      // Its 503 means that no instance was available: the request was not sent anywhere.
      const ownPage = res.headers["x-request-id"] === undefined && (res.headers["content-type"] ?? "").startsWith("text/html");
      if (target.name === "lb" && ownPage && [502, 503, 504].includes(status))
        return { kind: status === 503 ? "not-sent" : "no-answer", why: `haproxy ${status}`, via: target.name };
      return classify(spec, requestId, spec.method, status, res.headers, body, target.name);
    });
  }

  /** GET /requests/{id} on one instance, judged against the request it answers; "pending" while 202. */
  readResult(target: Target, spec: Spec, id: string, requestId: string): Promise<Answer | "pending"> {
    return this.exchange<Answer | "pending">(target, "GET", `/requests/${id}`, { "X-Request-Id": requestId }, undefined, (res, body) => {
      const status = res.statusCode ?? 0;
      if (status === 202) return "pending";
      // The stored reply is the device's answer to the original method, written as the answer to this GET.
      return classify({ ...spec, async: false }, requestId, "GET", status, res.headers, body, target.name);
    });
  }

  private exchange<T>(
    target: Target,
    method: string,
    path: string,
    headers: Record<string, string>,
    body: string | undefined,
    judge: (res: http.IncomingMessage, body: string) => T | Answer,
  ): Promise<T | Answer> {
    const via = target.name;
    const timeoutMs = this.bounds.clientTimeoutMs;
    return new Promise((resolve) => {
      const req = http.request({ host: "127.0.0.1", port: target.port, method, path, headers, agent: target.agent }, (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c));
        res.on("error", (err: NodeJS.ErrnoException) => resolve({ kind: "no-answer", why: `response ${err.code ?? err.message}`, via }));
        res.on("end", () => resolve(judge(res, text)));
      });
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error("hang"), { code: "HANG" })));
      req.on("error", (err: NodeJS.ErrnoException) => {
        if (err.code === "HANG") resolve({ kind: "bad", why: `hang: no answer within ${timeoutMs} ms`, via });
        else if (err.code === "ECONNREFUSED") resolve({ kind: "not-sent", why: "connection refused", via });
        else resolve({ kind: "no-answer", why: err.code ?? err.message, via });
      });
      req.end(body);
    });
  }
}
