// A legacy device that speaks whatever bytes a test gives it: a plain TCP server on loopback that reads a
// request head and answers with a scripted sequence of writes, silences, resets and closes. For replies no
// well-behaved HTTP server would ever send (the gateway's pass-through must survive them all).
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";

/** One step of a scripted answer. */
export type Step =
  | Buffer
  | string
  /** Keep the connection open and say nothing more (until the gateway gives up, or the server stops). */
  | { silence: true }
  /** Send an RST (socket.resetAndDestroy()). */
  | { reset: true }
  /** Close (FIN) and stop. */
  | { close: true }
  /** Send these bytes again and again, every `everyMs`, until the peer goes away (a never-ending body). */
  | { trickle: Buffer | string; everyMs: number };

/** What to answer: by the request's path, so one server can play every case. */
export type Script = (path: string) => Step[];

export interface RawDevice {
  readonly port: number;
  readonly url: string;
  /** Connections open now (the gateway must close every one it opened for a failed exchange, or reuse it). */
  openConnections(): number;
  stop(): Promise<void>;
}

/**
 * Answers each request once its head has arrived (`\r\n\r\n`), without reading any body unless the script
 * waits for it: a device may answer before the request body is read. Does not keep connections alive: after
 * the script, the connection stays open only if the script ends in silence or trickle.
 */
export async function startRawDevice(script: Script): Promise<RawDevice> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let head = "";
    let answered = false;
    socket.on("data", (chunk: Buffer) => {
      if (answered) return;
      head += chunk.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      answered = true;
      const path = head.slice(0, head.indexOf("\r\n")).split(" ")[1] ?? "/";
      play(socket, script(path), timers);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    openConnections: () => sockets.size,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearInterval(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function play(socket: net.Socket, steps: Step[], timers: Set<NodeJS.Timeout>): void {
  for (const step of steps) {
    if (socket.destroyed) return;
    if (typeof step === "string" || Buffer.isBuffer(step)) {
      socket.write(typeof step === "string" ? Buffer.from(step, "latin1") : step);
    } else if ("silence" in step) {
      return;
    } else if ("reset" in step) {
      socket.resetAndDestroy();
      return;
    } else if ("close" in step) {
      socket.end();
      return;
    } else {
      const bytes = typeof step.trickle === "string" ? Buffer.from(step.trickle, "latin1") : step.trickle;
      const timer = setInterval(() => {
        if (socket.destroyed || !socket.writable) {
          clearInterval(timer);
          timers.delete(timer);
          return;
        }
        socket.write(bytes);
      }, step.everyMs);
      timers.add(timer);
      socket.once("close", () => {
        clearInterval(timer);
        timers.delete(timer);
      });
      return;
    }
  }
  // A script that ends without a step of its own: the answer is complete, close like an HTTP/1.0 server.
  socket.end();
}

/** What the client saw: a whole answer, or a connection that ended before one did. */
export interface Seen {
  complete: boolean;
  status?: number;
  statusMessage?: string;
  headers?: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a connection of its own (a cut one must not take others with it). */
export function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Seen> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: init.method ?? "GET", headers: init.headers, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("error", () => undefined);
      res.on("close", () => {
        resolve({
          complete: res.complete,
          status: res.statusCode,
          statusMessage: res.statusMessage,
          headers: res.headers,
          body: Buffer.concat(parts),
        });
      });
    });
    req.on("error", () => resolve({ complete: false, body: Buffer.alloc(0) }));
    req.end(init.body);
  });
}
