// Child process holding the device HTTP servers of the soak and fleet runs. Each device answers
// `GET /TEMPERATURE` with readingBody(id) after holding the request `holdMs`: slow devices, so that the
// requests of a soak run are all outstanding at once. It counts the requests it holds, so the parent learns
// how many really reached the devices together (the gateway's own gauge says how many it waits for).
//
// Layouts: "per-device" gives each device a server of its own (its own origin: the gateway's pass-through
// pools connections per origin, so this is what a fleet of real devices looks like to it); "shared" serves
// every device from one server under `/{id}` (the fleet run: 1,000 devices need not be 1,000 listeners).
// The agents (or the gateway) connect from another process: this one holds only the server side of each
// connection, which keeps every process under the open-files limit. Started by bench/soak/soak.ts and bench/fleet/fleet.ts.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { readingBody } from "./device.js";
import { emit, fail, listen, workerConfig } from "./worker-io.js";

export interface SlowDevicesConfig {
  ids: string[];
  holdMs: number;
  layout: "per-device" | "shared";
}

/** The "ready" event: each device's base URL, by id (http://127.0.0.1:PORT, or …/{id} when shared). */
export interface SlowDevicesReady {
  pid: number;
  servers: Record<string, string>;
}

/** The "stats" event, answering the "stats" command: counts since the last "reset". */
export interface DeviceStats {
  /** Requests held right now. */
  held: number;
  /** The most requests held at once. */
  peakHeld: number;
  /** Requests answered. */
  answered: number;
  /** Requests whose client went away while held. */
  abandoned: number;
  /** Connections open now (keep-alive ones included): each is an open file here. */
  connections: number;
}

/** Pending connections the kernel queues per listener: thousands of connects arrive within seconds. */
const BACKLOG = 4096;

const stats: DeviceStats = { held: 0, peakHeld: 0, answered: 0, abandoned: 0, connections: 0 };

function counted(server: http.Server): http.Server {
  server.on("connection", (socket) => {
    stats.connections++;
    socket.on("close", () => stats.connections--);
  });
  return server;
}

function handler(
  config: SlowDevicesConfig,
  idOf: (req: http.IncomingMessage) => { id: string; path: string } | undefined,
): http.RequestListener {
  return (req, res) => {
    const target = idOf(req);
    if (req.method !== "GET" || !target || target.path !== "/TEMPERATURE") {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
      return;
    }
    stats.held++;
    stats.peakHeld = Math.max(stats.peakHeld, stats.held);
    const timer = setTimeout(() => {
      stats.held--;
      stats.answered++;
      const body = readingBody(target.id);
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    }, config.holdMs);
    res.on("close", () => {
      if (res.writableFinished) return;
      clearTimeout(timer);
      stats.held--;
      stats.abandoned++;
    });
  };
}

async function listenOn(server: http.Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1", backlog: BACKLOG }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function main(): Promise<void> {
  const config = workerConfig<SlowDevicesConfig>();
  const servers: http.Server[] = [];
  listen(
    (command) => {
      if (command === "stats") emit("stats", { ...stats });
      else if (command === "reset") {
        Object.assign(stats, { peakHeld: stats.held, answered: 0, abandoned: 0 });
        emit("reset");
      }
    },
    () => {
      for (const s of servers) {
        s.close();
        s.closeAllConnections();
      }
      process.exit(0);
    },
  );
  const urls: Record<string, string> = {};
  if (config.layout === "shared") {
    const ids = new Set(config.ids);
    const server = counted(
      http.createServer(
        handler(config, (req) => {
          const match = /^\/([^/]+)(\/.*)$/.exec(req.url ?? "");
          return match && ids.has(match[1] ?? "") ? { id: match[1] ?? "", path: match[2] ?? "" } : undefined;
        }),
      ),
    );
    servers.push(server);
    const base = await listenOn(server);
    for (const id of config.ids) urls[id] = `${base}/${id}`;
  } else {
    for (const id of config.ids) {
      const server = counted(http.createServer(handler(config, (req) => ({ id, path: req.url ?? "" }))));
      servers.push(server);
      urls[id] = await listenOn(server);
    }
  }
  const ready: SlowDevicesReady = { pid: process.pid, servers: urls };
  emit("ready", { ...ready });
}

main().catch(fail);
