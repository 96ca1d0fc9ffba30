// The HTTP client of the load workers for (b), (c) and (d), and of the fleet bench: GETs over keep-alive
// sockets, written as one prepared string and read with just enough parsing to find the status and the end
// of the body. The load worker shares the machine with what it measures, so what it spends per request is
// taken from them: node:http's client (an agent, a ClientRequest, an IncomingMessage and its stream
// per request) cost 0.065–0.097 ms of CPU per request in (b), against 0.04–0.06 for (a)'s bare component;
// this one 0.03–0.046 (docs/benchmark.md).
//
// It reads what the gateway, the bare proxy and the bench devices send: a status line, headers, and a body
// framed by Content-Length (RFC 9112 §6.3). A response framed otherwise (chunked, or until close) fails the
// request with a message that says so, rather than being misread.
import net from "node:net";

export interface HttpGetter {
  /** GETs `path`; resolves with the body of a 200 answer, rejects on any other status or failure. */
  get(path: string): Promise<string>;
  close(): void;
}

const HEAD_END = Buffer.from("\r\n\r\n", "latin1");
/** A head this long with no end is not an answer from the servers the bench talks to. */
const MAX_HEAD_BYTES = 16 * 1024;

interface Pending {
  resolve(body: string): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** The parts of a response head the client acts on, or why it cannot read the response. */
export type ParsedHead = { status: number; contentLength: number; close: boolean } | { problem: string };

/** Parses `head` (status line and header lines, without the blank line that ends them). */
export function parseHead(head: string): ParsedHead {
  const lines = head.split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? "");
  if (!status) return { problem: `not an HTTP/1.x status line: ${JSON.stringify((lines[0] ?? "").slice(0, 80))}` };
  let contentLength: number | undefined;
  let close = lines[0]?.startsWith("HTTP/1.0") ?? false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(":");
    if (colon <= 0) return { problem: `header line without a name: ${JSON.stringify(line.slice(0, 80))}` };
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "content-length") {
      if (!/^\d+$/.test(value) || (contentLength !== undefined && contentLength !== Number(value)))
        return { problem: `Content-Length ${JSON.stringify(value)} is not one length` };
      contentLength = Number(value);
    } else if (name === "transfer-encoding") {
      return { problem: `Transfer-Encoding ${JSON.stringify(value)}: this client reads Content-Length bodies only` };
    } else if (name === "connection") {
      const tokens = value
        .toLowerCase()
        .split(",")
        .map((t) => t.trim());
      if (tokens.includes("close")) close = true;
      else if (tokens.includes("keep-alive")) close = false;
    }
  }
  if (contentLength === undefined) return { problem: "no Content-Length: this client reads Content-Length bodies only" };
  return { status: Number(status[1]), contentLength, close };
}

/** One keep-alive connection, carrying one request at a time. */
class Connection {
  private readonly socket: net.Socket;
  private pending: Pending | undefined;
  private buffered: Buffer | undefined;
  private head: { status: number; contentLength: number; close: boolean; bodyStart: number } | undefined;
  closed = false;

  constructor(host: string, port: number, onClosed: (c: Connection) => void) {
    this.socket = net.connect({ host, port, noDelay: true });
    this.socket.on("data", (chunk: Buffer) => this.onData(chunk));
    this.socket.on("error", (err) => this.fail(err));
    this.socket.on("close", () => {
      this.closed = true;
      this.fail(new Error("the server closed the connection"));
      onClosed(this);
    });
  }

  send(request: string, pending: Pending): void {
    this.pending = pending;
    this.socket.write(request, "latin1");
  }

  destroy(err?: Error): void {
    if (err) this.fail(err);
    this.closed = true;
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    const data = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk;
    this.buffered = undefined;
    if (!this.pending) {
      this.destroy(new Error("bytes from the server with no request outstanding"));
      return;
    }
    if (!this.head) {
      const end = data.indexOf(HEAD_END);
      if (end < 0) {
        if (data.length > MAX_HEAD_BYTES) this.destroy(new Error(`no end of the response head in ${data.length} bytes`));
        else this.buffered = data;
        return;
      }
      const parsed = parseHead(data.toString("latin1", 0, end));
      if ("problem" in parsed) {
        this.destroy(new Error(parsed.problem));
        return;
      }
      this.head = { ...parsed, bodyStart: end + HEAD_END.length };
    }
    const { status, contentLength, close, bodyStart } = this.head;
    const available = data.length - bodyStart;
    if (available < contentLength) {
      this.buffered = data;
      return;
    }
    if (available > contentLength) {
      // One request at a time: nothing may follow the body it asked for.
      this.destroy(new Error(`${available - contentLength} bytes after a body of ${contentLength}`));
      return;
    }
    const body = data.toString("utf8", bodyStart);
    const pending = this.pending;
    this.pending = undefined;
    this.head = undefined;
    clearTimeout(pending.timer);
    if (close) this.destroy();
    if (status === 200) pending.resolve(body);
    else pending.reject(new Error(`status ${status}: ${body.slice(0, 200)}`));
  }

  private fail(err: Error): void {
    const pending = this.pending;
    if (!pending) return;
    this.pending = undefined;
    clearTimeout(pending.timer);
    pending.reject(err);
  }
}

export function httpGetter(baseUrl: string, sockets: number, timeoutMs: number): HttpGetter {
  const url = new URL(baseUrl);
  if (url.protocol !== "http:") throw new Error(`httpGetter: ${baseUrl} is not an http:// URL`);
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = Number(url.port || 80);
  const hostHeader = url.host;
  const idle: Connection[] = [];
  const all = new Set<Connection>();
  const waiting: Array<{ resolve(c: Connection): void; reject(err: Error): void }> = [];
  let closing = false;

  const onClosed = (c: Connection): void => {
    all.delete(c);
    const at = idle.indexOf(c);
    if (at >= 0) idle.splice(at, 1);
    // A request waiting for a connection takes the place of the one that closed.
    const next = waiting.shift();
    if (next && !closing) next.resolve(open());
  };
  const open = (): Connection => {
    const c = new Connection(host, port, onClosed);
    all.add(c);
    return c;
  };
  const acquire = (): Promise<Connection> | Connection => {
    const c = idle.pop();
    if (c) return c;
    if (all.size < sockets) return open();
    return new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  };
  const release = (c: Connection): void => {
    if (c.closed || closing) return;
    const next = waiting.shift();
    if (next) next.resolve(c);
    else idle.push(c);
  };

  const get = async (path: string): Promise<string> => {
    if (closing) throw new Error("the client is closed");
    const c = await acquire();
    try {
      if (closing) throw new Error("the client is closed");
      return await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => c.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
        c.send(`GET ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`, { resolve, reject, timer });
      });
    } finally {
      release(c);
    }
  };

  return {
    get,
    close: () => {
      closing = true;
      for (const c of all) c.destroy(new Error("the client is closed"));
      for (const w of waiting.splice(0)) w.reject(new Error("the client is closed"));
    },
  };
}
