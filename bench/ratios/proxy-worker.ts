// Child process for (c), the baseline of the HTTP pass-through: a bare http-proxy-3 (the library and version
// the gateway uses) with a keep-alive http.Agent, in front of the devices' own HTTP servers. It routes
// `/devices/{id}/{rest}` to device {id}'s server as `/{rest}`, and does nothing else: no registry, no
// Redis, no limits, no header rewriting, no metrics. Started by bench/ratios/ratios.ts.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ProxyServer } from "http-proxy-3";
import { emit, fail, listen, workerConfig } from "../common/worker-io.js";

export interface ProxyConfig {
  /** Each device's own HTTP server, by id (from the devices worker's "ready" event). */
  targets: Record<string, string>;
  /**
   * Connections per device origin, open and idle. The gateway opens as many to a device as it lets that device
   * have requests in flight (GATEWAY_DEVICE_MAX_IN_FLIGHT, 16 by default): the same here, so that the two paths
   * differ by their software and not by their pool.
   */
  maxSocketsPerDevice: number;
}

/** The "ready" event: where the proxy listens (http://127.0.0.1:PORT). */
export interface ProxyReady {
  pid: number;
  url: string;
}

const IDLE_SOCKET_TIMEOUT_MS = 4000;
const DEVICE_PATH = /^\/devices\/([^/?]+)(.*)$/;

async function main(): Promise<void> {
  const config = workerConfig<ProxyConfig>();
  const targets = new Map(Object.entries(config.targets));
  // An idle connection is closed after 4 s, as the gateway's pass-through pool does: below the 5 s the
  // devices' node servers keep one, so the proxy never sends on a connection the device is closing (with
  // thousands of devices asked in turn, a connection may sit idle about that long).
  const agent = new http.Agent({
    keepAlive: true,
    maxSockets: config.maxSocketsPerDevice,
    maxFreeSockets: config.maxSocketsPerDevice,
    timeout: IDLE_SOCKET_TIMEOUT_MS,
  });
  const proxy = new ProxyServer();

  const server = http.createServer((req, res) => {
    const match = DEVICE_PATH.exec(req.url ?? "");
    const target = match ? targets.get(match[1] ?? "") : undefined;
    if (!match || target === undefined) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("no such device");
      return;
    }
    const rest = match[2] ?? "";
    req.url = rest.startsWith("/") ? rest : `/${rest}`;
    // Without a callback of its own the library emits "error", which would throw: answer 502 instead.
    proxy.web(req, res, { target, agent }, (err) => {
      if (res instanceof http.ServerResponse && !res.headersSent) {
        res.writeHead(502, { "content-type": "text/plain" });
        res.end(`proxy error: ${err.message}`);
      } else res.destroy();
    });
  });

  let stopping = false;
  listen(
    () => undefined,
    () => {
      stopping = true;
      server.close(() => undefined);
      server.closeAllConnections();
      agent.destroy();
      process.exit(0);
    },
  );

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  if (stopping) return;
  const { port } = server.address() as AddressInfo;
  const ready: ProxyReady = { pid: process.pid, url: `http://127.0.0.1:${port}` };
  emit("ready", { ...ready });
}

main().catch(fail);
