// The load workers' HTTP client (bench/common/http-get.ts) against a real TCP server that answers each
// request as a test scripts it: well-framed answers come back whole however they are cut into writes, over
// as few connections as allowed; anything it cannot frame fails the request with a message saying why,
// rather than being misread or answering the wrong request.
import assert from "node:assert/strict";
import { EventEmitter, once } from "node:events";
import net, { type AddressInfo } from "node:net";
import { after, before, beforeEach, describe, it } from "node:test";
import { httpGetter, parseHead, type HttpGetter } from "../../bench/common/http-get.js";

/** What the server does with one request: write these byte strings in turn (each its own write), then close or not. */
interface Script {
  writes: string[];
  close?: boolean;
  /** Never answer. */
  silent?: boolean;
}

const ok = (body: string, extra = ""): string => `HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

let server: net.Server;
let base: string;
let connections = 0;
const sockets = new Set<net.Socket>();
/** The script for each request path; "/ok" answers "fine". */
const scripts = new Map<string, Script>();
const requestsSeen: string[] = [];
/** Emits "request" as the server reads each one. */
const seen = new EventEmitter();

function writeInTurn(socket: net.Socket, writes: string[], then: () => void): void {
  const [first, ...rest] = writes;
  if (first === undefined) return then();
  // Each part waits for the previous one to leave, so the client meets them as separate reads.
  socket.write(first, "latin1", () => setImmediate(() => writeInTurn(socket, rest, then)));
}

before(async () => {
  server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    let pending = "";
    socket.on("data", (chunk: Buffer) => {
      pending += chunk.toString("latin1");
      for (let end = pending.indexOf("\r\n\r\n"); end >= 0; end = pending.indexOf("\r\n\r\n")) {
        const head = pending.slice(0, end);
        pending = pending.slice(end + 4);
        requestsSeen.push(head);
        seen.emit("request");
        const path = head.split(" ")[1] ?? "";
        const script = scripts.get(path) ?? { writes: [ok("fine")] };
        if (script.silent) continue;
        writeInTurn(socket, script.writes, () => {
          if (script.close) socket.end();
        });
      }
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  scripts.clear();
  requestsSeen.length = 0;
  connections = 0;
});

/** Runs `use` with a client of `sockets` connections and the given bound, closed afterwards whatever happens. */
async function withClient(sockets: number, timeoutMs: number, use: (http: HttpGetter) => Promise<void>): Promise<void> {
  const http = httpGetter(base, sockets, timeoutMs);
  try {
    await use(http);
  } finally {
    http.close();
  }
}

describe("bench HTTP client", () => {
  it("sends one well-formed GET and keeps its connection for the next requests", async () => {
    await withClient(4, 10_000, async (http) => {
      for (let i = 0; i < 3; i++) assert.equal(await http.get("/ok"), "fine");
      assert.equal(connections, 1);
      assert.match(requestsSeen[0] ?? "", /^GET \/ok HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+$/);
    });
  });

  it("reads an answer cut into several writes, the head itself split, and a UTF-8 body", async () => {
    const body = "température ✓";
    const bytes = Buffer.from(ok(body, "Content-Type: text/plain; charset=utf-8\r\n"));
    // Inside the status line, inside the blank line that ends the head, inside the body's last character.
    const cuts = [10, bytes.indexOf("\r\n\r\n") + 2, bytes.length - 2];
    // As latin1 strings, which the server writes back as the very bytes they came from.
    const parts = [0, ...cuts].map((start, i) => bytes.subarray(start, cuts[i] ?? bytes.length).toString("latin1"));
    scripts.set("/split", { writes: parts });
    await withClient(1, 10_000, async (http) => {
      assert.equal(await http.get("/split"), body);
    });
  });

  it("rejects a non-200 answer with its status and body, and reuses the connection", async () => {
    scripts.set("/missing", { writes: ['HTTP/1.1 404 Not Found\r\nContent-Length: 17\r\n\r\n{"code":"NOPE"}\r\n'] });
    await withClient(1, 10_000, async (http) => {
      await assert.rejects(http.get("/missing"), /^Error: status 404: \{"code":"NOPE"\}/);
      assert.equal(await http.get("/ok"), "fine");
      assert.equal(connections, 1);
    });
  });

  it("opens a new connection after an answer with Connection: close, and after an HTTP/1.0 answer", async () => {
    scripts.set("/close", { writes: [ok("bye", "Connection: close\r\n")], close: true });
    scripts.set("/old", { writes: ["HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold"], close: true });
    await withClient(1, 10_000, async (http) => {
      assert.equal(await http.get("/close"), "bye");
      assert.equal(await http.get("/old"), "old");
      assert.equal(await http.get("/ok"), "fine");
      assert.equal(connections, 3);
    });
  });

  it("holds requests beyond its socket count until a connection is free", async () => {
    await withClient(2, 10_000, async (http) => {
      const bodies = await Promise.all(Array.from({ length: 7 }, () => http.get("/ok")));
      assert.deepEqual(bodies, Array(7).fill("fine"));
      assert.equal(connections, 2);
    });
  });

  /** What the server does, what the failure says, and the client's bound (10 s unless given). */
  const refused: Array<[string, Script, RegExp, number?]> = [
    [
      "a chunked body",
      { writes: ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nfine\r\n0\r\n\r\n"] },
      /Content-Length bodies only/,
    ],
    ["a body until close", { writes: ["HTTP/1.1 200 OK\r\n\r\nfine"], close: true }, /no Content-Length/],
    ["two different lengths", { writes: ["HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nfine"] }, /not one length/],
    ["a length that is no number", { writes: ["HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nfine"] }, /not one length/],
    ["no status line", { writes: ["fine\r\n\r\n"] }, /not an HTTP\/1\.x status line/],
    ["bytes after the body", { writes: [ok("fine") + "HTTP/1.1 200 OK\r\n"] }, /bytes after a body of 4/],
    [
      "a close before the body's end",
      { writes: ["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfine"], close: true },
      /closed the connection/,
    ],
    ["no answer within the bound", { writes: [], silent: true }, /no answer within 100 ms/, 100],
    ["a head that never ends", { writes: ["HTTP/1.1 200 OK\r\n", `X-Long: ${"a".repeat(17 * 1024)}`] }, /no end of the response head/],
  ];
  for (const [what, script, message, timeoutMs = 10_000] of refused) {
    it(`fails the request on ${what}, and the next request still gets its own answer`, async () => {
      scripts.set("/bad", script);
      await withClient(1, timeoutMs, async (http) => {
        await assert.rejects(http.get("/bad"), message);
        assert.equal(await http.get("/ok"), "fine");
      });
    });
  }

  it("fails the requests outstanding when it is closed, sent or not, and any later one", async () => {
    scripts.set("/silent", { writes: [], silent: true });
    const http = httpGetter(base, 1, 10_000);
    const arrived = once(seen, "request");
    const sent = http.get("/silent");
    await arrived;
    const queued = http.get("/ok");
    http.close();
    await assert.rejects(sent, /the client is closed/);
    await assert.rejects(queued, /the client is closed/);
    await assert.rejects(http.get("/ok"), /the client is closed/);
  });
});

describe("bench HTTP client: parseHead", () => {
  it("reads the status, the length and the connection's fate, whatever the header names' case", () => {
    assert.deepEqual(parseHead("HTTP/1.1 503 Service Unavailable\r\ncontent-LENGTH: 12\r\nConnection: Close"), {
      status: 503,
      contentLength: 12,
      close: true,
    });
    assert.deepEqual(parseHead("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0"), {
      status: 200,
      contentLength: 0,
      close: false,
    });
    assert.deepEqual(parseHead("HTTP/1.1 200\r\nContent-Length: 3\r\nContent-Length: 3"), { status: 200, contentLength: 3, close: false });
  });

  it("names what it cannot read", () => {
    assert.match((parseHead("HTTP/2 200\r\nContent-Length: 1") as { problem: string }).problem, /status line/);
    assert.match((parseHead("HTTP/1.1 200 OK\r\nno colon") as { problem: string }).problem, /without a name/);
    assert.match((parseHead("HTTP/1.1 200 OK\r\n: empty name") as { problem: string }).problem, /without a name/);
  });
});
