// A raw-socket legacy device for the keep-alive reuse race: the HTTP pass-through and the device agent both
// keep connections to devices alive, and both must meet a device that closes them sooner than they expect.
import net from "node:net";

export interface StaleClosingDevice {
  /** http://127.0.0.1:PORT */
  url: string;
  /** One entry per connection: the request lines it received. */
  connections: string[][];
  stop(): Promise<void>;
}

/**
 * A legacy device whose server closes idle connections sooner than it says (or without saying): it answers
 * the first request of each connection, keeping the connection open, and resets the connection when another
 * request arrives on it, as if its idle timeout fired just as that request was on its way. It answers
 * `ok METHOD body`. A race every keep-alive client meets (RFC 9112 §9.3.1, §9.6), made certain here.
 */
export async function startStaleClosingDevice(opts: { holdFirst?: number } = {}): Promise<StaleClosingDevice> {
  const connections: string[][] = [];
  // With holdFirst, the first answers wait until that many connections have a request: they all end up idle
  // in the pool at once (else one would carry the next request before a new one is opened).
  let held: Array<() => void> | undefined = opts.holdFirst ? [] : undefined;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    const seen: string[] = [];
    connections.push(seen);
    let buffered = Buffer.alloc(0);
    let bodyLeft = 0;
    socket.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (bodyLeft > 0) {
        const n = Math.min(bodyLeft, buffered.length);
        bodyLeft -= n;
        buffered = buffered.subarray(n);
        if (bodyLeft > 0) return;
      }
      const end = buffered.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buffered.subarray(0, end).toString("latin1");
      const requestLine = head.slice(0, head.indexOf("\r\n"));
      seen.push(requestLine);
      if (seen.length > 1) {
        socket.resetAndDestroy();
        return;
      }
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      const body = buffered.subarray(end + 4, end + 4 + length).toString("latin1");
      bodyLeft = length - Math.min(length, buffered.length - end - 4);
      buffered = Buffer.alloc(0);
      const method = requestLine.split(" ")[0] ?? "";
      const text = `ok ${method} ${body}`.trimEnd();
      const answer = () =>
        socket.write(
          `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\n\r\n${method === "HEAD" ? "" : text}`,
        );
      if (!held) return void answer();
      held.push(answer);
      if (held.length < (opts.holdFirst ?? 0)) return;
      for (const release of held) release();
      held = undefined;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
