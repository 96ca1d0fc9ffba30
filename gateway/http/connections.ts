import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { whenClosed } from "../../lib/http/response-end.js";
import { Roster, type RosterMember } from "../../lib/roster.js";

/** One open connection and the responses in progress on it, oldest first (more than one only with pipelining). */
class Connection implements RosterMember {
  rosterIndex = -1;
  readonly responses: ServerResponse[] = [];

  constructor(readonly socket: Socket) {}

  /** A response is over (written whole, or its client gone). */
  ended(res: ServerResponse): void {
    const index = this.responses.indexOf(res);
    if (index >= 0) this.responses.splice(index, 1);
  }
}

/**
 * The responses in progress on each connection of a server: which connections are idle (for a drain), and
 * which response a connection-level error concerns (for a timeout while a body is still coming in).
 *
 * Kept in a Roster of connections, each with an array of its responses, and found from its socket through a
 * WeakMap: no Map or Set holds a response, nor a connection, as a key or a value (lib/roster.ts says why:
 * such a collection keeps each request in flight when its table is replaced alive until the next full
 * collection).
 */
export class ConnectionTracker {
  private readonly open = new Roster<Connection>();
  private readonly bySocket = new WeakMap<Socket, Connection>();

  attach(server: Server): void {
    server.on("connection", (socket: Socket) => {
      const connection = new Connection(socket);
      this.open.add(connection);
      this.bySocket.set(socket, connection);
      // `on`: `close` comes once, and `once` would hold a wrapper and a bound function per connection.
      socket.on("close", () => this.open.remove(connection));
    });
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const connection = this.bySocket.get(req.socket);
      if (!connection) return;
      connection.responses.push(res);
      whenClosed(res, () => connection.ended(res));
    });
  }

  /** Connections with no request in progress, including those that never sent one. */
  *idle(): Iterable<Socket> {
    for (const connection of this.open.snapshot()) if (connection.responses.length === 0) yield connection.socket;
  }

  /** The responses in progress on a connection, oldest first (more than one only with pipelining). */
  inProgress(socket: Socket): readonly ServerResponse[] {
    return this.bySocket.get(socket)?.responses ?? [];
  }
}
