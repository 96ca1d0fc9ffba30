// The client for (b), (c) and (d): node:http with a keep-alive agent, the cheapest HTTP client Node has, so
// that the load process spends as little as possible per request.
import http from "node:http";

export interface HttpGetter {
  /** GETs `path`; resolves with the body of a 200 answer, rejects on any other status or failure. */
  get(path: string): Promise<string>;
  close(): void;
}

export function httpGetter(baseUrl: string, sockets: number, timeoutMs: number): HttpGetter {
  const url = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: sockets });
  const get = (path: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: url.hostname, port: url.port, path, method: "GET", agent, timeout: timeoutMs }, (res) => {
        const parts: Buffer[] = [];
        res.on("data", (b: Buffer) => parts.push(b));
        res.on("error", reject);
        res.on("end", () => {
          if (res.statusCode === 200) resolve(Buffer.concat(parts).toString("utf8"));
          else reject(new Error(`status ${res.statusCode}: ${Buffer.concat(parts).toString("utf8").slice(0, 200)}`));
        });
      });
      req.on("timeout", () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end();
    });
  return { get, close: () => agent.destroy() };
}
