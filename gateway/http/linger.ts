import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface LingerBounds {
  /** GATEWAY_LINGER_MS: the longest a connection lingers after its answer (nginx's lingering_time); 0: off. */
  totalMs: number;
  /** GATEWAY_LINGER_IDLE_MS: a lingering connection is closed once nothing came in for this long (nginx's lingering_timeout). */
  idleMs: number;
}

/**
 * The staged close of RFC 9112 §9.6, for a connection whose answer went out before its request's body was in
 * (a 413 for a body over GATEWAY_MAX_BODY_BYTES, refused on its Content-Length or cut while streaming; or any
 * other early answer with `Connection: close`).
 *
 * Node ends a `Connection: close` response with socket.destroySoon(): FIN, then a full close as soon as the
 * answer is flushed. A client that writes its whole body before it reads (no `Expect: 100-continue`, what
 * most old HTTP clients do) is still sending then: unread data in the receive buffer makes the kernel answer
 * the close with a reset, the client's writes fail (EPIPE, ECONNRESET), and the reset may discard the answer
 * before the client reads it. So such a connection instead half-closes (the answer, then FIN) and keeps
 * reading, through Node's parser, which drops what is left of the body without buffering it, until:
 * - the client closes its side (it has read the answer): closed at once;
 * - nothing came in for `idleMs`;
 * - `totalMs` passed since the answer (a client that never stops sending);
 * - the server stops: what is left of each linger is cut to `idleMs`, so lingering connections never hold
 *   a drain longer than that.
 * A request that still arrives on a lingering connection (pipelined after the body) is never served, nor
 * answered: the answer said `close` (RFC 9112 §9.6: the server MUST NOT process further requests); server.ts
 * asks `lingers()`. A lingering connection has no response in progress: it is no request in flight, and a
 * stopping server's sweep of idle connections (server.ts) finds it already half-closed; the bounds above end
 * it. Nothing bounds the bytes it may read within them: they are parsed and dropped, never held.
 */
export class Lingering {
  /** Lingering connections and when each one's linger ends at the latest. */
  private readonly sockets = new Map<Socket, { deadline: number; timer: NodeJS.Timeout }>();
  private stopping = false;

  constructor(private readonly bounds: LingerBounds) {}

  attach(server: Server): void {
    if (this.bounds.totalMs <= 0) return;
    // One listener for every response (node calls it with the response as `this`, and the response knows its
    // request): none of its own per request. Not a `once` listener: `finish` comes once, and `once` costs a
    // wrapper and a bound function per request.
    const lingering = (socket: Socket) => this.lingerOnClose(socket);
    const finished = function (this: ServerResponse): void {
      if (!this.req.complete) lingering(this.req.socket);
    };
    // First among the request listeners, so that it is in place before the app can answer.
    server.prependListener("request", (_req: IncomingMessage, res: ServerResponse) => {
      // Before Node's own 'finish' listener, which calls destroySoon() for a response that ends the connection.
      res.prependListener("finish", finished);
    });
  }

  /** Whether `socket` lingers after its last answer: nothing more is served on it. */
  lingers(socket: Socket): boolean {
    return this.sockets.has(socket);
  }

  /** How many connections linger now (for tests and diagnostics). */
  get size(): number {
    return this.sockets.size;
  }

  /** The server stops: each linger ends within `idleMs` from now, and so do those that start from now on. */
  stop(): void {
    this.stopping = true;
    const latest = Date.now() + this.bounds.idleMs;
    for (const [socket, linger] of this.sockets) {
      if (linger.deadline > latest) this.schedule(socket, latest);
    }
  }

  /** The next time Node would end this connection after an answer, it lingers instead. */
  private lingerOnClose(socket: Socket): void {
    socket.destroySoon = () => this.linger(socket);
  }

  private linger(socket: Socket): void {
    if (this.sockets.has(socket) || socket.destroyed) return;
    const close = () => socket.destroy();
    // The client's FIN: it sent everything it meant to (and, with the answer before it, read the answer).
    socket.once("end", close);
    // Node refreshes a socket's timeout on every read its HTTP parser makes, so this is an idle timer.
    socket.setTimeout(this.bounds.idleMs, close);
    socket.once("close", () => {
      clearTimeout(this.sockets.get(socket)?.timer);
      this.sockets.delete(socket);
    });
    this.schedule(socket, Date.now() + (this.stopping ? Math.min(this.bounds.totalMs, this.bounds.idleMs) : this.bounds.totalMs));
    socket.end(); // the answer is out; FIN after it, and the read side stays open
  }

  private schedule(socket: Socket, deadline: number): void {
    clearTimeout(this.sockets.get(socket)?.timer);
    this.sockets.set(socket, { deadline, timer: setTimeout(() => socket.destroy(), Math.max(0, deadline - Date.now())) });
  }
}
