import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { GatewayError } from "../errors.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";
import { GATEWAY_SETTINGS } from "../settings.js";
import { answerClientError, answerUnroutable } from "./client-error.js";
import { answerConnect } from "./connect.js";
import { ConnectionTracker } from "./connections.js";
import type { Handler } from "./front-door.js";
import { Lingering } from "./linger.js";
import { writeErrorResponse } from "./raw-error.js";
import { GatewayResponse } from "./request-id.js";

export interface HttpServerOptions {
  host: string;
  port: number;
  /** GATEWAY_HEADERS_TIMEOUT_MS: a request's head must be in this long after its first byte (408). */
  headersTimeoutMs?: number;
  /** GATEWAY_RECEIVE_TIMEOUT_MS: the whole request, head and body, must be in this long after its first byte. */
  receiveTimeoutMs?: number;
  /** GATEWAY_LINGER_MS: how long a connection answered before its body was in may linger, reading the rest (linger.ts); 0: off. */
  lingerMs?: number;
  /** GATEWAY_LINGER_IDLE_MS: a lingering connection with nothing coming in for this long is closed. */
  lingerIdleMs?: number;
}

// Defaults for a server built without them (a test, the metrics listener): the settings' own (settings.ts).
const DEFAULT_HEADERS_TIMEOUT_MS = GATEWAY_SETTINGS.GATEWAY_HEADERS_TIMEOUT_MS.default;
const DEFAULT_RECEIVE_TIMEOUT_MS = GATEWAY_SETTINGS.GATEWAY_RECEIVE_TIMEOUT_MS.default;
const DEFAULT_LINGER_MS = GATEWAY_SETTINGS.GATEWAY_LINGER_MS.default;
const DEFAULT_LINGER_IDLE_MS = GATEWAY_SETTINGS.GATEWAY_LINGER_IDLE_MS.default;
const LISTEN_BACKLOG = 4096;

/**
 * The listeners a response may have for one event. Each part that waits for a device request's end adds a
 * `close` listener of its own (lib/http/response-end.ts): the access log, the connection tracker, the
 * in-flight cap, the route, the hang-up signal, the pass-through exchange and, when tracing, the request's
 * span; the proxy library adds one per attempt (up to four with the stale-connection retries) and pipe() one.
 * That is up to a dozen, past node's default of ten, at which it warns of a leak.
 */
const CLOSE_LISTENERS = 24;

/** How often a stopping server ends the connections that fell idle since the last look. */
const IDLE_SWEEP_MS = 100;

/** Listens for the app; `port` 0 picks a free port, read back from `address` once started. */
export class HttpServer implements Lifecycle {
  private server: Server | undefined;
  private readonly connections = new ConnectionTracker();
  private readonly lingering: Lingering;

  constructor(
    /** The app (app.ts), called with a final callback of ours (Express's `app(req, res, next)` convention). */
    private readonly app: Handler,
    private readonly opts: HttpServerOptions,
    private readonly logger?: Logger,
  ) {
    this.lingering = new Lingering({ totalMs: opts.lingerMs ?? DEFAULT_LINGER_MS, idleMs: opts.lingerIdleMs ?? DEFAULT_LINGER_IDLE_MS });
  }

  get port(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0;
  }

  /** Connections lingering after an answer that went out before their request's body was in (linger.ts). */
  get lingeringConnections(): number {
    return this.lingering.size;
  }

  async start(): Promise<void> {
    const headersTimeout = this.opts.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS;
    const unroutable = answerUnroutable(this.logger);
    const server = createServer(
      {
        // X-Request-Id goes on each head as it is written (request-id.ts).
        ServerResponse: GatewayResponse,
        headersTimeout,
        requestTimeout: this.opts.receiveTimeoutMs ?? DEFAULT_RECEIVE_TIMEOUT_MS,
        // Node looks for expired requests this often (30 s by default): a timeout is only as sharp as that.
        connectionsCheckingInterval: Math.min(5000, Math.max(100, Math.floor(headersTimeout / 4))),
        // Checked by the app instead (head-checks.ts), so that this 400 too is a JSON catalogue error.
        requireHostHeader: false,
      },
      (req, res) => {
        // A request pipelined after an answer that closed the connection is never served (RFC 9112 §9.6), nor
        // reset, which could take the answer with it: its body too is dropped, and the linger ends the
        // connection (linger.ts).
        if (this.lingering.lingers(req.socket)) {
          req.resume();
          return;
        }
        res.setMaxListeners(CLOSE_LISTENERS);
        // With a final handler of ours (answerUnroutable, client-error.ts).
        this.app(req, res, () => unroutable(req, res));
      },
    );
    // Node answers an Expect other than 100-continue with a bare 417; this one is the JSON error.
    server.on("checkExpectation", (_req: IncomingMessage, res: ServerResponse) =>
      writeErrorResponse(res, new GatewayError("GW_EXPECTATION_FAILED")),
    );
    // Node keeps the first 2000 header fields and silently drops the rest; the app refuses floods itself
    // (GATEWAY_MAX_HEADERS, 431) rather than pass a cut list on to a device. The head stays bounded by
    // Node's 16 KiB in any case.
    server.maxHeadersCount = 0;
    this.connections.attach(server);
    this.lingering.attach(server);
    server.on("clientError", answerClientError(this.connections, this.logger));
    // Node hands CONNECT to this event, never to the app: answer it (405), or the client just sees a close.
    server.on("connect", answerConnect(this.logger));
    // Keep-alive sockets from load balancers should outlive their idle timers, not the other way round.
    // (headersTimeout runs from a request's first byte, not over the idle time between requests.)
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      // A burst of new connections (a fleet's clients reconnecting at once) waits in the kernel's accept queue
      // while the event loop is busy; Node's default of 511 overflows first, and the clients then see
      // resets. The kernel caps it at net.core.somaxconn.
      server.listen({ port: this.opts.port, host: this.opts.host, backlog: LISTEN_BACKLOG }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    this.server = server;
  }

  /**
   * Stops accepting, lets responses in progress finish, and ends connections as they fall idle. Node's own
   * closeIdleConnections() is not enough: it looks once, and it skips a connection that has not sent a
   * (first or next) request yet, which then stays open until the client or a timeout ends it (a minute and
   * more), holding the drain that long. Connections lingering after an early answer (linger.ts) end within
   * their idle bound.
   */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    this.lingering.stop();
    const endIdle = () => {
      for (const socket of this.connections.idle()) socket.end();
    };
    endIdle();
    const sweep = setInterval(endIdle, IDLE_SWEEP_MS);
    try {
      await closed;
    } finally {
      clearInterval(sweep);
    }
  }
}
