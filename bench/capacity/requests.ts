// The capacity run's HTTP client: batches of requests of one kind (method, headers, body) through the
// gateway, a fixed number outstanding at once, counted by status; node:http with keep-alive.
import http from "node:http";

export interface RequestSpec {
  method: "GET" | "POST";
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface BatchResult {
  /** Answers by status ("200", "202", ...) or by failure message. */
  outcomes: Record<string, number>;
  /** Location headers of the answers (asynchronous requests: /requests/{id}), in no particular order. */
  locations: string[];
  elapsedMs: number;
}

/** Sends `n` requests, `concurrency` at a time; `spec(i)` makes the i-th. Never rejects: failures are counted. */
export async function sendBatch(
  baseUrl: string,
  n: number,
  concurrency: number,
  spec: (i: number) => RequestSpec,
  timeoutMs = 30_000,
): Promise<BatchResult> {
  const url = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: concurrency > 0, maxSockets: concurrency > 0 ? concurrency : Infinity });
  const outcomes: Record<string, number> = {};
  const locations: string[] = [];
  const one = (s: RequestSpec): Promise<void> =>
    new Promise((resolve) => {
      const count = (outcome: string): void => {
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        resolve();
      };
      const headers: Record<string, string | number> = { ...s.headers };
      if (s.body !== undefined) headers["content-length"] = Buffer.byteLength(s.body);
      const req = http.request(
        { host: url.hostname, port: url.port, path: s.path, method: s.method, agent, headers, timeout: timeoutMs },
        (res) => {
          res.resume();
          res.on("error", (err) => count(err.message));
          res.on("end", () => {
            if (typeof res.headers.location === "string") locations.push(res.headers.location);
            count(String(res.statusCode));
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on("error", (err) => count(err.message.slice(0, 120)));
      req.end(s.body);
    });
  const t0 = performance.now();
  let next = 0;
  const lanes = concurrency > 0 ? Math.min(concurrency, n) : n;
  try {
    await Promise.all(
      Array.from({ length: lanes }, async () => {
        for (let i = next++; i < n; i = next++) await one(spec(i));
      }),
    );
  } finally {
    agent.destroy();
  }
  return { outcomes, locations, elapsedMs: performance.now() - t0 };
}
