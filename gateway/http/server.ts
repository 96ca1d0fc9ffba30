import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Express } from "express";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";
import { answerConnect } from "./connect.js";

/** How often a stopping server ends the connections that fell idle since the last look. */
const IDLE_SWEEP_MS = 100;

/** Listens for the app; `port` 0 picks a free port, read back from `address` once started. */
export class HttpServer implements Lifecycle {
  private server: Server | undefined;
  private readonly requestsBySocket = new Map<Socket, number>();

  constructor(private readonly app: Express, private readonly opts: { host: string; port: number }, private readonly logger?: Logger) {}

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    const server = createServer(this.app);
    this.trackConnections(server);
    // Node hands CONNECT to this event, never to the app: answer it (405), or the client just sees a close.
    server.on("connect", answerConnect(this.logger));
    // Keep-alive sockets from load balancers should outlive their idle timers, not the other way round.
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
  }

  /**
   * Stops accepting, lets responses in progress finish, and ends connections as they fall idle. Node's own
   * closeIdleConnections() is not enough: it looks once, and it skips a connection that has not sent a
   * (first or next) request yet, which it keeps until headersTimeout (66 s), holding the drain that long.
   */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const endIdle = () => {
      for (const [socket, requests] of this.requestsBySocket) if (requests === 0) socket.end();
    };
    endIdle();
    const sweep = setInterval(endIdle, IDLE_SWEEP_MS);
    try {
      await closed;
    } finally {
      clearInterval(sweep);
    }
  }

  /** Counts the requests in progress on each connection, so that stop() knows which ones are idle. */
  private trackConnections(server: Server): void {
    server.on("connection", (socket: Socket) => {
      this.requestsBySocket.set(socket, 0);
      socket.once("close", () => this.requestsBySocket.delete(socket));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket;
      this.requestsBySocket.set(socket, (this.requestsBySocket.get(socket) ?? 0) + 1);
      res.once("close", () => {
        const left = this.requestsBySocket.get(socket);
        if (left !== undefined) this.requestsBySocket.set(socket, left - 1);
      });
    });
  }
}
