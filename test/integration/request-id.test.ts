// X-Request-Id as the gateway's responses carry it (http/request-id.ts): noted on arrival, put on the head as
// the head is written, however it is written, on a real node server made with the gateway's response class;
// set at once on a response of any other server.
import assert from "node:assert/strict";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { GatewayResponse, noteRequestId } from "../../gateway/http/request-id.js";

type Write = (res: ServerResponse) => void;

/** The ways a head gets written, by the path asked for. */
const WRITES: Record<string, Write> = {
  "/implicit": (res) => res.end("body"),
  "/status-and-headers": (res) => {
    res.writeHead(201, { "Content-Type": "text/plain" });
    res.end();
  },
  "/reason-and-raw-list": (res) => {
    res.writeHead(202, "Taken", ["Content-Type", "text/plain"]);
    res.end();
  },
  "/flat-list-with-id": (res) => {
    res.writeHead(200, ["X-Request-Id", "from-list", "Content-Type", "text/plain"]);
    res.end();
  },
  "/pairs-with-id": (res) => {
    res.writeHead(200, "OK", [
      ["Content-Type", "text/plain"],
      ["x-request-id", "from-list"],
    ]);
    res.end();
  },
  "/object-with-id": (res) => {
    res.writeHead(200, { "x-request-ID": "from-list" });
    res.end();
  },
  "/own-id": (res) => {
    res.setHeader("X-Request-Id", "set-by-handler");
    res.end();
  },
};

/** What the handler saw before writing: whether the header was on the response yet. */
let seenEarly: boolean[] = [];
/** After writing: how many fields the response's header table holds (none when node wrote the head from a list alone). */
let tableAfter: number[] = [];

function serve(withClass: boolean): Server {
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    noteRequestId(req, res);
    seenEarly.push(res.hasHeader("x-request-id"));
    (WRITES[req.url ?? ""] ?? WRITES["/implicit"]!)(res);
    tableAfter.push(res.getHeaderNames().length);
  };
  return withClass ? createServer({ ServerResponse: GatewayResponse }, handler) : createServer(handler);
}

function get(server: Server, path: string, id?: string): Promise<IncomingMessage> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, headers: id ? { "X-Request-Id": id } : {} }, (res) => {
      res.resume();
      res.on("end", () => resolve(res));
    });
    req.on("error", reject);
    req.end();
  });
}

const servers: Server[] = [];
before(async () => {
  for (const withClass of [true, false]) {
    const server = serve(withClass);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
  }
});
after(() => {
  for (const server of servers) server.close();
});

describe("X-Request-Id", () => {
  it("goes on every head the gateway's response class writes, and not before", async () => {
    const [gateway] = servers as [Server];
    seenEarly = [];
    for (const path of ["/implicit", "/status-and-headers", "/reason-and-raw-list"]) {
      const res = await get(gateway, path, `id-${path.slice(1)}`);
      assert.equal(res.headers["x-request-id"], `id-${path.slice(1)}`, path);
    }
    assert.deepEqual(seenEarly, [false, false, false], "not held on the response while it waits");
    const listed = await get(gateway, "/reason-and-raw-list");
    assert.equal(listed.statusMessage, "Taken");
    assert.equal(listed.headers["content-type"], "text/plain");
    assert.match(String(listed.headers["x-request-id"]), /^[0-9a-f-]{36}$/, "a new id when the caller gave none");
  });

  it("is not stamped on a head whose header list carries one: the list's, and no header table made", async () => {
    const [gateway] = servers as [Server];
    tableAfter = [];
    for (const path of ["/flat-list-with-id", "/pairs-with-id", "/object-with-id"]) {
      const res = await get(gateway, path, "from-client");
      assert.equal(res.headers["x-request-id"], "from-list", path);
      assert.equal(res.headers["content-type"], path === "/object-with-id" ? undefined : "text/plain", path);
    }
    assert.deepEqual(tableAfter, [0, 0, 0]);
  });

  it("leaves an id the handler set itself", async () => {
    const res = await get(servers[0] as Server, "/own-id", "from-client");
    assert.equal(res.headers["x-request-id"], "set-by-handler");
  });

  it("is set at once on a response of another server", async () => {
    seenEarly = [];
    const res = await get(servers[1] as Server, "/implicit", "elsewhere");
    assert.equal(res.headers["x-request-id"], "elsewhere");
    assert.deepEqual(seenEarly, [true]);
  });
});
