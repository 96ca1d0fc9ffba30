import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Express } from "express";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";
import { answerConnect } from "./connect.js";

/** Listens for the app; `port` 0 picks a free port, read back from `address` once started. */
export class HttpServer implements Lifecycle {
  private server: Server | undefined;

  constructor(private readonly app: Express, private readonly opts: { host: string; port: number }, private readonly logger?: Logger) {}

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  async start(): Promise<void> {
    const server = createServer(this.app);
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

  /** Stops accepting, lets responses in progress finish, then closes idle keep-alive sockets. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await closed;
  }
}
