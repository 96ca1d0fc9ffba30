// Child process generating the soak load: `requests` GETs of `/devices/{id}/TEMPERATURE` at `baseUrl` (the
// gateway), ids in turn, issued at an even pace over `rampMs` and never retried, each on a connection of its
// own (`agent: false`), as that many independent legacy clients would. Each outcome is counted by what the
// client saw: 200 with the device's own reading, the gateway's error code with its status, or the socket
// error. A child, so that the gateway's process (and RSS) is its own. Started by bench/soak/phase.ts.
import http from "node:http";
import { performance } from "node:perf_hooks";
import { setTimeout as delay } from "node:timers/promises";
import { readingBody } from "../common/device.js";
import { summarize, type LatencySummary } from "../common/stats.js";
import { emit, fail, listen, workerConfig } from "../common/worker-io.js";

export interface BurstConfig {
  baseUrl: string;
  ids: string[];
  requests: number;
  rampMs: number;
  /** A request with no complete answer within this bound is given up on (counted as "client timeout"). */
  timeoutMs: number;
}

export interface BurstResult {
  requests: number;
  succeeded: number;
  /** Outcome → count: "200", "504 GW_DEVICE_TIMEOUT", "ECONNRESET", "200 wrong body", "client timeout", … */
  outcomes: Record<string, number>;
  /** Each failed outcome → when the first and the last of them were issued (ms since the first request). */
  failuresIssuedMs: Record<string, [number, number]>;
  /** The most requests sent and not yet answered at once, as the client saw them. */
  peakOutstanding: number;
  /** From the first request to the last one issued. */
  issueMs: number;
  /** From the first request to the last answer. */
  elapsedMs: number;
  /** Of the successful requests. */
  latencyMs: LatencySummary;
}

/** How often the pacing loop issues the requests that are due. */
const TICK_MS = 10;

function outcomeOf(status: number, body: string, expected: string): string {
  if (status === 200) return body === expected ? "200" : "200 wrong body";
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    if (typeof code === "string") return `${status} ${code}`;
  } catch {
    // not the gateway's JSON: the status alone says it
  }
  return String(status);
}

function get(url: URL, path: string, timeoutMs: number, expected: string): Promise<string> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const failed = (err: NodeJS.ErrnoException): void => finish(err.code ?? err.message);
    const req = http.request({ host: url.hostname, port: url.port, path, method: "GET", agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (b: Buffer) => parts.push(b));
      res.on("error", failed);
      res.on("end", () => finish(outcomeOf(res.statusCode ?? 0, Buffer.concat(parts).toString("utf8"), expected)));
    });
    // A deadline for the whole exchange, not an idle timer: the answer is meant to take the hold time.
    const timer = setTimeout(() => req.destroy(Object.assign(new Error("client timeout"), { code: "client timeout" })), timeoutMs);
    req.on("error", failed);
    // Whatever else ended the exchange has been reported by now; this only catches a silent close.
    req.on("close", () => setImmediate(() => finish("closed without an answer")));
    req.end();
  });
}

async function main(): Promise<void> {
  const config = workerConfig<BurstConfig>();
  listen(
    () => undefined,
    () => process.exit(0), // the parent is done with us, or gone: leave at once (the sockets close with us)
  );
  emit("ready", { pid: process.pid });
  const url = new URL(config.baseUrl);
  const outcomes: Record<string, number> = {};
  const failuresIssuedMs: Record<string, [number, number]> = {};
  const latencies: number[] = [];
  let outstanding = 0;
  let peakOutstanding = 0;
  const all: Array<Promise<void>> = [];
  const t0 = performance.now();
  let issued = 0;
  while (issued < config.requests) {
    const due =
      config.rampMs <= 0
        ? config.requests
        : Math.min(config.requests, Math.ceil(((performance.now() - t0) / config.rampMs) * config.requests));
    for (; issued < due; issued++) {
      const id = config.ids[issued % config.ids.length] as string;
      const started = performance.now();
      outstanding++;
      peakOutstanding = Math.max(peakOutstanding, outstanding);
      all.push(
        get(url, `/devices/${id}/TEMPERATURE`, config.timeoutMs, readingBody(id)).then((outcome) => {
          outstanding--;
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
          if (outcome === "200") latencies.push(performance.now() - started);
          else {
            const at = Math.round(started - t0);
            const span = failuresIssuedMs[outcome];
            failuresIssuedMs[outcome] = span ? [Math.min(span[0], at), Math.max(span[1], at)] : [at, at];
          }
        }),
      );
    }
    if (issued < config.requests) await delay(TICK_MS);
  }
  const issueMs = performance.now() - t0;
  emit("issued", { issueMs });
  await Promise.all(all);
  const result: BurstResult = {
    requests: config.requests,
    succeeded: outcomes["200"] ?? 0,
    outcomes,
    failuresIssuedMs,
    peakOutstanding,
    issueMs,
    elapsedMs: performance.now() - t0,
    latencyMs: summarize(latencies),
  };
  // Stays until the parent closes stdin (listen above): it reads this process's CPU after the result.
  emit("result", { result });
}

main().catch(fail);
