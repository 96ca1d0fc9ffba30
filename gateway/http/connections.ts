import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { whenClosed } from "../../lib/http/response-end.js";

/**
 * The responses in progress on each connection of a server: which connections are idle (for a drain), and
 * which response a connection-level error concerns (for a timeout while a body is still coming in).
 */
export class ConnectionTracker {
  private readonly bySocket = new Map<Socket, Set<ServerResponse>>();

  attach(server: Server): void {
    server.on("connection", (socket: Socket) => {
      this.bySocket.set(socket, new Set());
      // `on`: `close` comes once, and `once` would hold a wrapper and a bound function per connection.
      socket.on("close", () => this.bySocket.delete(socket));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const responses = this.bySocket.get(req.socket);
      if (!responses) return;
      responses.add(res);
      whenClosed(res, () => responses.delete(res));
    });
  }

  /** Connections with no request in progress, including those that never sent one. */
  *idle(): Iterable<Socket> {
    for (const [socket, responses] of this.bySocket) if (responses.size === 0) yield socket;
  }

  /** The responses in progress on a connection (more than one only with pipelining). */
  inProgress(socket: Socket): ReadonlySet<ServerResponse> {
    return this.bySocket.get(socket) ?? new Set();
  }
}
