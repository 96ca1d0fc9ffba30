// The HTTP pass-through (gateway/proxy) between real node:http servers on loopback: a front server that
// calls forward() and writes the catalogue error when it rejects, and upstreams playing legacy devices.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { EventEmitter, once } from "node:events";
import http from "node:http";
import net from "node:net";
import { describe, it, type TestContext } from "node:test";
import { Registry } from "prom-client";
import { pollUntil } from "../../local-stack/ports.js";
import { errorBody, isGatewayError } from "../../gateway/errors.js";
import { createMetrics, type Metrics } from "../../gateway/metrics/metrics.js";
import { HttpPassThrough } from "../../gateway/proxy/pass-through.js";
import { startDeviceServer, type DeviceServer } from "../helpers/http-device.js";
import { startStaleClosingDevice, type StaleClosingDevice } from "../helpers/stale-device.js";

// ---------------------------------------------------------------------------------------------------------
// Harness

interface Route {
  httpTarget: string;
  /** Default: the request's own target, verbatim. */
  resource?: string;
  timeoutMs?: number;
  /** The front reads the body itself and hands it to forward(). */
  buffer?: boolean;
}

interface Front extends DeviceServer {
  /** "outcome": "resolved", or the code forward() rejected with, once per request; "response": each client response, as its request arrives. */
  readonly outcomes: EventEmitter;
}

interface Setup {
  pt: HttpPassThrough;
  metrics: Metrics;
  front: Front;
}

let lastRequestId = 0;

/** A pass-through and a front server routing every request with `route`; both go away after the test. */
async function setup(
  t: TestContext,
  route: (req: http.IncomingMessage) => Route,
  opts: { maxBodyBytes?: number; keepAliveMaxSockets?: number } = {},
): Promise<Setup> {
  const metrics = createMetrics(new Registry());
  const pt = new HttpPassThrough(
    {
      maxBodyBytes: opts.maxBodyBytes ?? 8 * 1024 * 1024,
      ...(opts.keepAliveMaxSockets ? { keepAliveMaxSockets: opts.keepAliveMaxSockets } : {}),
    },
    { metrics },
  );
  await pt.start();
  const outcomes = new EventEmitter();
  const server = await startDeviceServer((req, res) => {
    void handle(req, res);
  });
  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const r = route(req);
    const requestId = `rid-${++lastRequestId}`;
    outcomes.emit("response", res);
    try {
      const body = r.buffer ? Buffer.concat(await req.toArray()) : undefined;
      await pt.forward(
        req,
        res,
        { httpTarget: r.httpTarget, resource: r.resource ?? req.url ?? "/", timeoutMs: r.timeoutMs ?? 10_000, requestId },
        body,
      );
      outcomes.emit("outcome", "resolved");
    } catch (err) {
      outcomes.emit("outcome", isGatewayError(err) ? err.code : String(err));
      if (res.destroyed) return;
      if (!isGatewayError(err)) {
        res.statusCode = 500;
        res.end(String(err));
        return;
      }
      assert.equal(res.headersSent, false, "forward() rejects only while nothing was written");
      if (err.code === "GW_PAYLOAD_TOO_LARGE") res.setHeader("Connection", "close");
      res.statusCode = err.status;
      res.setHeader("Content-Type", "application/json");
      res.setHeader("X-Request-Id", requestId);
      res.end(JSON.stringify(errorBody(err, requestId)));
    }
  }
  t.after(async () => {
    await server.stop();
    await pt.stop();
  });
  return { pt, metrics, front: Object.assign(server, { outcomes }) };
}

interface Seen {
  method: string;
  url: string;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

interface Upstream extends DeviceServer {
  /** Requests received whole, in order. */
  readonly seen: Seen[];
  /** TCP connections accepted so far. */
  readonly stats: { connections: number };
}

type Answer = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

const answerOk: Answer = (req, res) => {
  res.setHeader("Content-Type", "text/plain");
  res.end(`ok ${req.method}`);
};

/** A legacy device that records what reached it and answers once it has the whole request. */
async function upstream(t: TestContext, answer: Answer = answerOk): Promise<Upstream> {
  const seen: Seen[] = [];
  const server = await rawUpstream(t, (req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (chunk: Buffer) => parts.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(parts);
      seen.push({ method: req.method ?? "", url: req.url ?? "", rawHeaders: req.rawHeaders, headers: req.headers, body });
      answer(req, res, body);
    });
  });
  return Object.assign(server, { seen });
}

/** A legacy device with its own request handler, counting connections. */
async function rawUpstream(t: TestContext, handler: http.RequestListener): Promise<DeviceServer & { stats: { connections: number } }> {
  const server = await startDeviceServer(handler);
  const stats = { connections: 0 };
  server.server.on("connection", () => stats.connections++);
  t.after(() => server.stop());
  return Object.assign(server, { stats });
}

/** A port nothing listens on any more. */
async function closedPortUrl(): Promise<string> {
  const server = await startDeviceServer(() => {});
  await server.stop();
  return server.url;
}

interface Reply {
  status: number;
  reason: string;
  rawHeaders: string[];
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** False when the response broke off before its end. */
  complete: boolean;
}

interface Send {
  method?: string;
  path?: string;
  /** An array is sent as is: names, order and repeats exactly (node adds no Host then). */
  headers?: http.OutgoingHttpHeaders | string[];
  body?: Buffer | string | Array<Buffer | string>;
}

/** One request on a connection of its own; resolves with whatever response came, even a truncated one. */
function send(port: number, opts: Send = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: opts.method ?? "GET",
        path: opts.path ?? "/",
        agent: false,
        ...(opts.headers ? { headers: opts.headers } : {}),
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (chunk: Buffer) => parts.push(chunk));
        res.on("error", () => {}); // a response that broke off: reported as complete: false
        res.on("close", () =>
          resolve({
            status: res.statusCode ?? 0,
            reason: res.statusMessage ?? "",
            rawHeaders: res.rawHeaders,
            headers: res.headers,
            body: Buffer.concat(parts),
            complete: res.complete,
          }),
        );
      },
    );
    req.on("error", reject);
    const body = opts.body === undefined ? [] : Array.isArray(opts.body) ? opts.body : [opts.body];
    for (const piece of body) req.write(piece);
    req.end();
  });
}

/** Values of a header in a raw header list, in order, case-insensitively. */
function rawValues(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]?.toLowerCase() === name.toLowerCase()) out.push(raw[i + 1] ?? "");
  return out;
}

function errorCode(reply: Reply): string {
  return (JSON.parse(reply.body.toString("utf8")) as { error: { code: string } }).error.code;
}

async function proxyErrors(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { labels, value } of (await metrics.proxyErrors.get()).values) if (value > 0) out[String(labels.code)] = value;
  return out;
}

/** Resolves when the device's side of a request is closed, whichever way (an abort is an 'error' first). */
function closeOf(req: http.IncomingMessage): Promise<void> {
  req.on("error", () => {});
  return new Promise((resolve) => req.once("close", () => resolve()));
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Fails with `what` instead of hanging when `promise` does not settle within a generous bound. */
async function within<T>(what: string, promise: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------------------

describe("HTTP pass-through: what reaches the device", () => {
  it("carries GET HEAD POST PUT PATCH DELETE OPTIONS with path and query byte for byte", async (t) => {
    const device = await upstream(t, (req, res) => {
      res.setHeader("Content-Length", "5");
      res.end(req.method === "HEAD" ? undefined : "hello");
    });
    const { front } = await setup(t, () => ({ httpTarget: device.url }));
    // Dot segments, %2e%2e, double slashes, quotes, braces and an encoded € stay as the client wrote them.
    const resource = "/a/../b/%2e%2e/c//d?q=it's&sp=%20+&empty=&k=v=w&u=%E2%82%AC&x={}|^`&x=2";
    for (const method of ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
      const body = ["POST", "PUT", "PATCH"].includes(method) ? `{"m":"${method}"}` : undefined;
      const reply = await send(front.port, {
        method,
        path: resource,
        ...(body ? { body, headers: { "Content-Type": "application/json" } } : {}),
      });
      assert.equal(reply.status, 200, method);
      assert.equal(reply.body.toString(), method === "HEAD" ? "" : "hello", method);
      assert.equal(reply.headers["content-length"], "5", `${method}: the device's Content-Length`);
      const seen = device.seen.at(-1);
      assert.equal(seen?.method, method);
      assert.equal(seen?.url, resource, `${method}: the device sees the resource verbatim`);
      assert.equal(seen?.body.toString(), body ?? "", `${method}: body`);
    }
    assert.equal(device.seen.length, 7);
    // A bodiless DELETE/OPTIONS goes without framing: http-proxy-3 would add Content-Length: 0.
    for (const seen of device.seen.filter((s) => ["GET", "HEAD", "DELETE", "OPTIONS"].includes(s.method))) {
      assert.equal(seen.headers["content-length"], undefined, seen.method);
      assert.equal(seen.headers["transfer-encoding"], undefined, seen.method);
    }
  });

  it("puts the registry's base path in front of the resource", async (t) => {
    const device = await upstream(t);
    const { front } = await setup(t, () => ({ httpTarget: `${device.url}/legacy/api/` }));
    const reply = await send(front.port, { path: "/TEMPERATURE?unit=C&x=%2F" });
    assert.equal(reply.status, 200);
    assert.equal(device.seen[0]?.url, "/legacy/api/TEMPERATURE?unit=C&x=%2F");
  });

  it("streams a 5 MiB body to the device as it comes, and the device's 5 MiB back, byte-exact", async (t) => {
    const received = new EventEmitter();
    let upBytes = 0;
    const upHash = createHash("sha256");
    const device = await rawUpstream(t, (req, res) => {
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      req.on("data", (chunk: Buffer) => {
        upBytes += chunk.length;
        upHash.update(chunk);
        received.emit("data");
      });
      req.pipe(res); // echo, while the request is still coming
    });
    const { front } = await setup(t, () => ({ httpTarget: device.url }));
    const body = randomBytes(5 * 1024 * 1024);
    const pieces = 10;
    const size = body.length / pieces;

    const reply = new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port: front.port, method: "PUT", path: "/firmware", agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on("data", (chunk: Buffer) => parts.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      void (async () => {
        for (let i = 0; i < pieces; i++) {
          req.write(body.subarray(i * size, (i + 1) * size));
          // The device has everything written so far before the client writes more: nothing in between
          // waits for the whole body (the client has not even finished it).
          await within(
            `upstream data up to byte ${(i + 1) * size}`,
            (async () => {
              while (upBytes < (i + 1) * size) await once(received, "data");
            })(),
          );
        }
        req.end();
      })().catch(reject);
    });
    const { status, body: echoed } = await reply;
    assert.equal(status, 200);
    assert.equal(upBytes, body.length);
    assert.equal(upHash.digest("hex"), sha256(body), "the device got the body byte-exact");
    assert.equal(echoed.length, body.length);
    assert.equal(sha256(echoed), sha256(body), "the client got the device's body byte-exact");
  });

  it("sends a body the caller already read, as given", async (t) => {
    const device = await upstream(t);
    const { front } = await setup(t, () => ({ httpTarget: device.url, buffer: true }));
    const body = randomBytes(100_000);
    const reply = await send(front.port, { method: "POST", path: "/upload", body: [body.subarray(0, 50_000), body.subarray(50_000)] });
    assert.equal(reply.status, 200);
    assert.equal(device.seen[0]?.headers["content-length"], String(body.length));
    assert.ok(device.seen[0]?.body.equals(body));
    const empty = await send(front.port, { method: "GET", path: "/x" });
    assert.equal(empty.status, 200);
    assert.equal(device.seen[1]?.headers["content-length"], undefined, "no body, no framing");
  });

  it("keeps a chunked DELETE body chunked, so it cannot run into the next request on the connection", async (t) => {
    const device = await upstream(t, (req, res, body) => {
      res.end(`${req.method} ${body.toString()}`);
    });
    const { front } = await setup(t, () => ({ httpTarget: device.url }), { keepAliveMaxSockets: 1 });
    // No Content-Length: node sends these bodies chunked.
    const first = await send(front.port, {
      method: "DELETE",
      path: "/BULB",
      headers: { "Transfer-Encoding": "chunked" },
      body: ["GET /smuggled HTTP/1.1\r\n", "Host: x\r\n\r\n"],
    });
    const second = await send(front.port, { method: "OPTIONS", path: "/BULB", headers: { "Transfer-Encoding": "chunked" }, body: "opt" });
    assert.equal(first.body.toString(), "DELETE GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.equal(second.body.toString(), "OPTIONS opt");
    assert.deepEqual(
      device.seen.map((s) => [s.method, s.url, s.headers["transfer-encoding"], s.headers["content-length"]]),
      [
        ["DELETE", "/BULB", "chunked", undefined],
        ["OPTIONS", "/BULB", "chunked", undefined],
      ],
    );
    assert.equal(device.stats.connections, 1, "both went over one kept-alive connection");
  });

  it("forwards end-to-end headers, repeats kept, and no hop-by-hop header in either direction", async (t) => {
    const device = await upstream(t, (_req, res) => {
      res.writeHead(200, [
        "Connection",
        "X-Hop-Res",
        "X-Hop-Res",
        "1",
        "Keep-Alive",
        "timeout=7, max=3",
        "Proxy-Authenticate",
        "Basic realm=x",
        "Proxy-Other",
        "x",
        "Trailer",
        "X-T",
        "Upgrade",
        "foo",
        "X-Kept",
        "yes",
        "Content-Type",
        "text/plain",
      ]);
      res.end("body");
    });
    const { front } = await setup(t, () => ({ httpTarget: device.url }));
    const reply = await send(front.port, {
      method: "POST", // node sends a Trailer field only with a chunked body
      path: "/hop",
      body: "x",
      headers: [
        "Host",
        "front.example",
        "Transfer-Encoding",
        "chunked",
        "Connection",
        "keep-alive, X-Hop-Named",
        "X-Hop-Named",
        "secret",
        "Keep-Alive",
        "timeout=9",
        "Proxy-Authorization",
        "Basic Zm9vOmJhcg==",
        "Proxy-Foo",
        "x",
        "TE",
        "trailers",
        "Trailer",
        "X-Trail",
        "Upgrade",
        "foo/1", // not among the Connection options: no upgrade asked, a stray hop-by-hop field
        "X-Gateway-Timeout",
        "5000",
        "X-End-To-End",
        "kept",
        "X-Repeat",
        "1",
        "Accept",
        "text/plain",
        "X-Repeat",
        "2",
      ],
    });
    assert.equal(reply.status, 200);
    const seen = device.seen[0];
    assert.ok(seen);
    for (const name of ["X-Hop-Named", "Keep-Alive", "Proxy-Authorization", "Proxy-Foo", "TE", "Trailer", "Upgrade", "X-Gateway-Timeout"]) {
      assert.deepEqual(rawValues(seen.rawHeaders, name), [], `${name} does not reach the device`);
    }
    assert.doesNotMatch(String(seen.headers.connection), /x-hop-named/i);
    assert.deepEqual(rawValues(seen.rawHeaders, "X-End-To-End"), ["kept"]);
    assert.deepEqual(rawValues(seen.rawHeaders, "X-Repeat"), ["1", "2"], "repeats are separate lines, in order");
    assert.ok(seen.rawHeaders.includes("X-End-To-End"), "names keep the client's spelling");

    for (const name of ["X-Hop-Res", "Proxy-Authenticate", "Proxy-Other", "Trailer", "Upgrade"]) {
      assert.deepEqual(rawValues(reply.rawHeaders, name), [], `${name} does not reach the client`);
    }
    assert.doesNotMatch(String(reply.headers.connection), /x-hop-res/i);
    assert.notEqual(reply.headers["keep-alive"], "timeout=7, max=3");
    assert.deepEqual(rawValues(reply.rawHeaders, "X-Kept"), ["yes"]);
    assert.equal(reply.body.toString(), "body");
  });

  it("sets Host to the device's, appends X-Forwarded-*, and replaces X-Request-Id", async (t) => {
    const device = await upstream(t);
    const { front } = await setup(t, () => ({ httpTarget: device.url }));
    const reply = await send(front.port, {
      path: "/who",
      headers: {
        Host: "gateway.example:8080",
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "orig.example",
        "X-Request-Id": "client-chosen",
      },
    });
    const plain = await send(front.port, { path: "/who", headers: { Host: "gateway.example:8080" } });
    assert.equal(reply.status, 200);
    const [withChain, without] = device.seen;
    assert.ok(withChain && without);
    assert.equal(withChain.headers.host, `127.0.0.1:${device.port}`, "the device sees its own Host");
    assert.equal(withChain.headers["x-forwarded-for"], "203.0.113.9,127.0.0.1");
    assert.equal(withChain.headers["x-forwarded-proto"], "https,http");
    assert.equal(withChain.headers["x-forwarded-host"], "orig.example,gateway.example:8080");
    assert.equal(withChain.headers["x-forwarded-port"], "8080");
    assert.deepEqual(rawValues(withChain.rawHeaders, "X-Request-Id"), [reply.headers["x-request-id"]]);
    assert.match(String(reply.headers["x-request-id"]), /^rid-\d+$/, "the gateway's id, not the client's");
    assert.equal(without.headers["x-forwarded-for"], "127.0.0.1");
    assert.equal(without.headers["x-forwarded-proto"], "http");
    assert.equal(without.headers["x-forwarded-host"], "gateway.example:8080");
    assert.equal(without.headers.host, `127.0.0.1:${device.port}`);
    assert.equal(plain.headers["x-request-id"], without.headers["x-request-id"]);
  });

  it("goes to the configured target only, whatever the request's absolute URI or Host says", async (t) => {
    const device = await upstream(t);
    const elsewhere = await upstream(t);
    // The worst a caller could do: hand the request's own target over as the resource.
    const { front } = await setup(t, () => ({ httpTarget: device.url }));
    const absolute = `http://127.0.0.1:${elsewhere.port}/steal?x=1`;
    const first = await send(front.port, { path: absolute, headers: { Host: `127.0.0.1:${elsewhere.port}` } });
    const second = await send(front.port, { path: "/x", headers: { Host: `127.0.0.1:${elsewhere.port}` } });
    const third = await send(front.port, { path: "//127.0.0.1:1/x", headers: { Host: "169.254.169.254" } });
    assert.deepEqual([first.status, second.status, third.status], [200, 200, 200]);
    assert.equal(elsewhere.stats.connections, 0, "nothing went anywhere else");
    assert.deepEqual(
      device.seen.map((s) => [s.url, s.headers.host]),
      [
        [`/${absolute}`, `127.0.0.1:${device.port}`],
        ["/x", `127.0.0.1:${device.port}`],
        ["//127.0.0.1:1/x", `127.0.0.1:${device.port}`],
      ],
    );
  });
});

describe("HTTP pass-through: what reaches the client", () => {
  it("passes the device's status, reason phrase, repeated headers and body through", async (t) => {
    const device = await upstream(t, (req, res) => {
      if (req.url === "/missing") {
        res.writeHead(404, "No Such Sensor", { "Content-Type": "text/plain" });
        res.end("no such sensor");
        return;
      }
      if (req.url === "/broken") {
        res.writeHead(500, "Internal Server Error", { "Content-Type": "text/plain" });
        res.end("device fault");
        return;
      }
      res.writeHead(299, "Custom Reason", [
        "Set-Cookie",
        "a=1; Path=/",
        "X-Multi",
        "one",
        "Set-Cookie",
        "b=2; HttpOnly",
        "X-Multi",
        "two",
        "X-Request-Id",
        "device-made",
        "Content-Type",
        "application/octet-stream",
      ]);
      res.end(Buffer.from([0, 1, 2, 255, 13, 10]));
    });
    const { front } = await setup(t, () => ({ httpTarget: device.url }));
    const ok = await send(front.port, { path: "/cookies" });
    assert.equal(ok.status, 299);
    assert.equal(ok.reason, "Custom Reason");
    assert.deepEqual(rawValues(ok.rawHeaders, "Set-Cookie"), ["a=1; Path=/", "b=2; HttpOnly"]);
    assert.deepEqual(rawValues(ok.rawHeaders, "X-Multi"), ["one", "two"]);
    assert.deepEqual(rawValues(ok.rawHeaders, "X-Request-Id"), [String(device.seen[0]?.headers["x-request-id"])]);
    assert.deepEqual([...ok.body], [0, 1, 2, 255, 13, 10]);

    const missing = await send(front.port, { path: "/missing" });
    assert.deepEqual([missing.status, missing.reason, missing.body.toString()], [404, "No Such Sensor", "no such sensor"]);
    const broken = await send(front.port, { path: "/broken" });
    assert.deepEqual([broken.status, broken.body.toString()], [500, "device fault"]);
    assert.equal(broken.headers["content-type"], "text/plain", "the device's answer, not a gateway error");
  });

  it("holds the device back while the client does not read, then relays every byte", async (t) => {
    // The device sends 64 MiB as fast as it is let; the client reads nothing until the device is held back:
    // its write refused, and the gateway's response to the client full (needing drain) while holding no
    // more than a bound. A relay that read on regardless would pile the body up in that response (the
    // client reads nothing) and let the device get to its end.
    const size = 64 * 1024 * 1024;
    const bound = 1024 * 1024;
    const chunk = randomBytes(64 * 1024);
    let written = 0;
    let blocked = false;
    /** The most the gateway's response to the client held unsent, seen at each of the device's writes. */
    let mostBuffered = 0;
    let toClient: http.ServerResponse | undefined;
    const wroteAll = new EventEmitter();
    const device = await rawUpstream(t, (_req, res) => {
      res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": String(size) });
      const more = (): void => {
        blocked = false;
        while (written < size) {
          mostBuffered = Math.max(mostBuffered, toClient?.writableLength ?? 0);
          written += chunk.length;
          if (!res.write(chunk)) {
            blocked = true;
            res.once("drain", more);
            return;
          }
        }
        res.end();
        wroteAll.emit("done");
      };
      more();
    });
    const { front } = await setup(t, () => ({ httpTarget: device.url }));
    front.outcomes.on("response", (res: http.ServerResponse) => (toClient = res));
    const socket = net.connect(front.port, "127.0.0.1");
    t.after(() => socket.destroy());
    socket.pause();
    socket.write("GET /dump HTTP/1.1\r\nHost: dev\r\nConnection: close\r\n\r\n");
    const early = new Promise<never>((_resolve, reject) =>
      wroteAll.once("done", () => reject(new Error(`the device wrote all ${size} bytes while the client read none`))),
    );
    early.catch(() => {});
    await Promise.race([
      early,
      pollUntil("the device held back", () => blocked && toClient?.writableNeedDrain === true && toClient.writableLength <= bound, {
        timeoutMs: 30_000,
      }),
    ]);
    assert.ok(written < size, `the device got ahead by ${written} bytes`);
    const hash = createHash("sha256");
    let bodyBytes = -1;
    let head = Buffer.alloc(0);
    socket.on("data", (data: Buffer) => {
      if (bodyBytes < 0) {
        head = Buffer.concat([head, data]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        assert.match(head.subarray(0, end).toString("latin1"), /^HTTP\/1\.1 200 /);
        const rest = head.subarray(end + 4);
        bodyBytes = rest.length;
        hash.update(rest);
        return;
      }
      bodyBytes += data.length;
      hash.update(data);
    });
    socket.resume();
    await within("the client's connection to end", once(socket, "end"), 30_000);
    assert.equal(bodyBytes, size, "every byte of the device's body reached the client");
    assert.equal(written, size);
    assert.ok(mostBuffered <= bound, `the gateway held up to ${mostBuffered} bytes for the client`);
    const expected = createHash("sha256");
    for (let n = 0; n < size; n += chunk.length) expected.update(chunk);
    assert.equal(hash.digest("hex"), expected.digest("hex"), "in order, byte-exact");
  });
});

describe("HTTP pass-through: failures", () => {
  it("answers 502 GW_UPSTREAM_UNREACHABLE when the device refuses the connection", async (t) => {
    const target = await closedPortUrl();
    const { front, metrics } = await setup(t, () => ({ httpTarget: target }));
    const reply = await send(front.port, { path: "/TEMPERATURE" });
    assert.equal(reply.status, 502);
    assert.equal(errorCode(reply), "GW_UPSTREAM_UNREACHABLE");
    assert.match(String(reply.headers["x-request-id"]), /^rid-/);
    assert.deepEqual(await proxyErrors(metrics), { GW_UPSTREAM_UNREACHABLE: 1 });
  });

  it("answers 504 GW_UPSTREAM_TIMEOUT when the device does not answer in time, and lets go of it", async (t) => {
    const closed: Array<Promise<void>> = [];
    const device = await rawUpstream(t, (req) => {
      closed.push(closeOf(req)); // and never answer
    });
    const { front, metrics, pt } = await setup(t, () => ({ httpTarget: device.url, timeoutMs: 300 }));
    const reply = await send(front.port, { path: "/slow" });
    assert.equal(reply.status, 504);
    assert.equal(errorCode(reply), "GW_UPSTREAM_TIMEOUT");
    await within("the device's side of the request to close", Promise.all(closed));
    assert.deepEqual(await proxyErrors(metrics), { GW_UPSTREAM_TIMEOUT: 1 });
    await pollUntil("no connection left in use", () => pt.connections().active === 0);
  });

  it("breaks the client's response off when the device resets mid-body, and carries on", async (t) => {
    const device = await upstream(t, (req, res) => {
      if (req.url === "/fine") {
        res.end("fine");
        return;
      }
      res.writeHead(200, { "Content-Length": "1000" });
      res.write(Buffer.alloc(100, 7), () => req.socket.destroy());
    });
    const { front, metrics } = await setup(t, () => ({ httpTarget: device.url }));
    const outcome = once(front.outcomes, "outcome");
    const reply = await send(front.port, { path: "/reset" });
    assert.equal(reply.status, 200, "the head had gone out already");
    assert.equal(reply.headers["content-length"], "1000");
    assert.equal(reply.complete, false, "the client sees a truncated response");
    assert.ok(reply.body.length <= 100);
    assert.deepEqual(await outcome, ["resolved"], "forward() resolves: there was nothing left to answer");
    assert.deepEqual(await proxyErrors(metrics), { GW_UPSTREAM_UNREACHABLE: 1 });
    const after = await send(front.port, { path: "/fine" });
    assert.deepEqual([after.status, after.body.toString()], [200, "fine"]);
  });

  it("breaks the client's response off when the device stalls mid-body for longer than the timeout", async (t) => {
    const closed: Array<Promise<void>> = [];
    const device = await rawUpstream(t, (req, res) => {
      closed.push(closeOf(req));
      res.writeHead(200, { "Content-Length": "1000" });
      res.write("the first bytes, then nothing"); // and never the rest
    });
    // The head must beat the deadline (else this is the 504 case above): a bound a loaded machine stays within.
    const { front, metrics } = await setup(t, () => ({ httpTarget: device.url, timeoutMs: 2000 }));
    const outcome = once(front.outcomes, "outcome");
    const reply = await send(front.port, { path: "/stall" });
    assert.equal(reply.status, 200);
    assert.equal(reply.complete, false);
    assert.equal(reply.body.toString(), "the first bytes, then nothing");
    assert.deepEqual(await outcome, ["resolved"]);
    await within("the device's side to close", Promise.all(closed));
    assert.deepEqual(await proxyErrors(metrics), { GW_UPSTREAM_TIMEOUT: 1 });
  });

  it("answers 413 for a declared Content-Length over the limit without reaching the device", async (t) => {
    const device = await upstream(t);
    const { front, metrics } = await setup(t, () => ({ httpTarget: device.url }), { maxBodyBytes: 1024 });
    const reply = await send(front.port, { method: "POST", path: "/big", headers: { "Content-Length": "2048" }, body: Buffer.alloc(2048) });
    assert.equal(reply.status, 413);
    assert.equal(errorCode(reply), "GW_PAYLOAD_TOO_LARGE");
    assert.equal(device.stats.connections, 0, "the device was never contacted");
    const fits = await send(front.port, { method: "POST", path: "/fits", body: Buffer.alloc(1024) });
    assert.equal(fits.status, 200, "exactly the limit is fine");
    assert.deepEqual(await proxyErrors(metrics), { GW_PAYLOAD_TOO_LARGE: 1 });
  });

  it("answers 413 for a chunked body that passes the limit, and the device never gets it whole", async (t) => {
    const started: Array<{ ended: boolean; closed: Promise<void> }> = [];
    const device = await rawUpstream(t, (req, res) => {
      const entry = { ended: false, closed: closeOf(req) };
      started.push(entry);
      req.on("end", () => {
        entry.ended = true;
        res.end("got it all");
      });
      req.resume();
    });
    const { front, metrics } = await setup(t, () => ({ httpTarget: device.url }), { maxBodyBytes: 1024 });
    const reply = await send(front.port, { method: "POST", path: "/big", body: [Buffer.alloc(600), Buffer.alloc(600), Buffer.alloc(600)] });
    assert.equal(reply.status, 413);
    assert.equal(errorCode(reply), "GW_PAYLOAD_TOO_LARGE");
    await within("the device's side to close", Promise.all(started.map((s) => s.closed)));
    assert.deepEqual(
      started.map((s) => s.ended),
      started.map(() => false),
      "no request reached its end at the device",
    );
    assert.deepEqual(await proxyErrors(metrics), { GW_PAYLOAD_TOO_LARGE: 1 });
  });

  it("refuses protocol upgrades (WebSocket) with 405, and ignores an h2c offer", async (t) => {
    const device = await upstream(t);
    const { front, metrics } = await setup(t, () => ({ httpTarget: device.url }));
    const ws = await send(front.port, {
      path: "/socket",
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
      },
    });
    assert.equal(ws.status, 405);
    assert.equal(errorCode(ws), "GW_METHOD_NOT_ALLOWED");
    assert.equal(device.stats.connections, 0);
    const h2c = await send(front.port, {
      path: "/h2c",
      headers: { Connection: "Upgrade, HTTP2-Settings", Upgrade: "h2c", "HTTP2-Settings": "AAMAAABkAARAAAAAAAIAAAAA" },
    });
    assert.equal(h2c.status, 200, "an h2c offer may be ignored (RFC 9110 §7.8)");
    assert.equal(device.seen[0]?.headers.upgrade, undefined);
    assert.equal(device.seen[0]?.headers["http2-settings"], undefined);
    assert.deepEqual(await proxyErrors(metrics), { GW_METHOD_NOT_ALLOWED: 1 });
  });

  it("resolves without an answer when the client goes away, and cancels the device's request", async (t) => {
    const reached = new EventEmitter();
    const closed: Array<Promise<void>> = [];
    const device = await rawUpstream(t, (req) => {
      closed.push(closeOf(req));
      reached.emit("request");
    });
    const { front, metrics } = await setup(t, () => ({ httpTarget: device.url }));
    const outcome = once(front.outcomes, "outcome");
    const arrived = once(reached, "request");
    const req = http.request({ host: "127.0.0.1", port: front.port, path: "/wait", agent: false });
    req.on("error", () => {});
    req.end();
    await within("the request to reach the device", arrived);
    req.destroy();
    assert.deepEqual(await within("forward() to settle", outcome), ["resolved"]);
    await within("the device's side to close", Promise.all(closed));
    assert.deepEqual(await proxyErrors(metrics), {}, "a client going away is not a proxy failure");
  });

  it("stop() answers what is in flight with 503 and closes every connection", async (t) => {
    const reached = new EventEmitter();
    const device = await rawUpstream(t, () => {
      reached.emit("request");
    });
    const { front, pt } = await setup(t, () => ({ httpTarget: device.url }));
    const arrived = once(reached, "request");
    const pending = send(front.port, { path: "/hang" });
    await within("the request to reach the device", arrived);
    await pt.stop();
    const reply = await pending;
    assert.equal(reply.status, 503);
    assert.equal(errorCode(reply), "GW_SHUTTING_DOWN");
    const later = await send(front.port, { path: "/after" });
    assert.equal(later.status, 503);
    await pollUntil("every connection closed", () => {
      const c = pt.connections();
      return c.active + c.idle + c.waiting === 0;
    });
  });
});

describe("HTTP pass-through: connections", () => {
  it("leaks no socket after 50 failures and 50 successes, and counts every failure by code", async (t) => {
    const MAX = 4;
    const refused = await closedPortUrl();
    const slow = await rawUpstream(t, () => {}); // never answers
    const resetting = await upstream(t, (req, res) => {
      res.writeHead(200, { "Content-Length": "100" });
      res.write("partial", () => req.socket.destroy());
    });
    const fine = await upstream(t, (_req, res, body) => {
      res.end(`fine ${body.length}`);
    });
    const { front, pt, metrics } = await setup(
      t,
      (req) => {
        const kind = req.url?.split("/")[1];
        if (kind === "refused") return { httpTarget: refused };
        if (kind === "slow") return { httpTarget: slow.url, timeoutMs: 150 };
        if (kind === "reset") return { httpTarget: resetting.url };
        return { httpTarget: fine.url };
      },
      { maxBodyBytes: 1024, keepAliveMaxSockets: MAX },
    );

    /** `n` requests, `concurrency` at a time. */
    async function run(n: number, concurrency: number, one: (i: number) => Promise<void>): Promise<void> {
      let next = 0;
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < n) await one(next++);
        }),
      );
    }
    const statuses: number[] = [];
    const completeFlags: boolean[] = [];
    // 15 refused, 15 timeouts (all at once: MAX get a connection, the rest wait in the agent's queue and are
    // cancelled there), 10 resets mid-body, 10 chunked bodies over the limit.
    await run(15, 5, async () => void statuses.push((await send(front.port, { path: "/refused/x" })).status));
    await run(15, 15, async () => void statuses.push((await send(front.port, { path: "/slow/x" })).status));
    await run(10, 5, async () => void completeFlags.push((await send(front.port, { path: "/reset/x" })).complete));
    await run(
      10,
      5,
      async () =>
        void statuses.push(
          (await send(front.port, { method: "POST", path: "/fine/big", body: [Buffer.alloc(800), Buffer.alloc(800)] })).status,
        ),
    );
    assert.deepEqual(
      statuses.sort(),
      [...Array<number>(10).fill(413), ...Array<number>(15).fill(502), ...Array<number>(15).fill(504)].sort(),
    );
    assert.deepEqual(completeFlags, Array(10).fill(false));

    const bodies: string[] = [];
    await run(50, 10, async (i) => {
      const reply = await send(front.port, {
        method: i % 2 ? "POST" : "GET",
        path: `/fine/${i}`,
        ...(i % 2 ? { body: "x".repeat(i) } : {}),
      });
      bodies.push(`${reply.status} ${reply.body.toString()}`);
    });
    assert.equal(bodies.filter((b) => /^200 fine \d+$/.test(b)).length, 50);

    assert.deepEqual(await proxyErrors(metrics), { GW_UPSTREAM_UNREACHABLE: 25, GW_UPSTREAM_TIMEOUT: 15, GW_PAYLOAD_TOO_LARGE: 10 });
    // Three origins were reached: at most MAX idle connections each, none in use, nothing waiting.
    const counts = await pollUntil("the agent to settle", () => {
      const c = pt.connections();
      return c.active === 0 && c.waiting === 0 ? c : undefined;
    });
    assert.ok(counts.idle <= 3 * MAX, `idle connections: ${counts.idle}`);
    const open = (server: http.Server) =>
      new Promise<number>((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
    await pollUntil(
      "the devices' side to settle",
      async () => (await open(fine.server)) <= MAX && (await open(slow.server)) <= MAX && (await open(resetting.server)) === 0,
    );
    assert.ok(
      fine.stats.connections <= MAX + 10,
      `connections opened to the fine device: ${fine.stats.connections} (10 were cut by a 413)`,
    );
  });
});

describe("HTTP pass-through: a kept-alive connection the device had closed", () => {
  /** A pass-through with one idle connection to the device, which the device will reset when it is reused. */
  async function afterOneRequest(t: TestContext): Promise<Setup & { device: StaleClosingDevice }> {
    const device = await startStaleClosingDevice();
    t.after(() => device.stop());
    const s = await setup(t, (req) => ({ httpTarget: device.url, buffer: req.url?.startsWith("/buffered") ?? false }));
    const first = await send(s.front.port, { path: "/warm" });
    assert.deepEqual([first.status, first.body.toString()], [200, "ok GET"]);
    await pollUntil("the connection to go back to the pool", () => s.pt.connections().idle === 1);
    return { ...s, device };
  }

  async function retries(metrics: Metrics): Promise<number> {
    return (await metrics.proxyRetries.get()).values[0]?.value ?? 0;
  }

  async function settled(pt: HttpPassThrough): Promise<void> {
    await pollUntil(
      "the exchanges and connections to settle",
      () => pt.inFlight() === 0 && pt.connections().active === 0 && pt.connections().waiting === 0,
    );
  }

  for (const { method, path, body, expected } of [
    { method: "GET", path: "/x", body: undefined, expected: "ok GET" },
    { method: "HEAD", path: "/x", body: undefined, expected: "" },
    { method: "DELETE", path: "/x", body: undefined, expected: "ok DELETE" },
    { method: "PUT", path: "/buffered/x", body: "on", expected: "ok PUT on" },
  ]) {
    it(`sends ${method}${body ? " with a buffered body" : ""} again on another connection, and answers with the device's response`, async (t) => {
      const { front, pt, metrics, device } = await afterOneRequest(t);
      const reply = await send(front.port, { method, path, ...(body ? { body } : {}) });
      assert.deepEqual([reply.status, reply.body.toString()], [200, expected]);
      assert.equal(await retries(metrics), 1);
      assert.deepEqual(await proxyErrors(metrics), {});
      // The stale connection saw the request and was reset; a new one carried it.
      assert.deepEqual(
        device.connections.map((c) => c.map((line) => line.split(" ")[0])),
        [["GET", method], [method]],
      );
      await settled(pt);
    });
  }

  it("tries at most 3 times more, each on another connection, then answers 502", async (t) => {
    for (const [stale, expected] of [
      [3, 200],
      [4, 502],
    ] as const) {
      await t.test(`${stale} stale connections`, async (t) => {
        const device = await startStaleClosingDevice({ holdFirst: stale });
        t.after(() => device.stop());
        const { front, pt, metrics } = await setup(t, () => ({ httpTarget: device.url }));
        const warm = await Promise.all(Array.from({ length: stale }, (_, i) => send(front.port, { path: `/warm/${i}` })));
        assert.deepEqual(
          warm.map((r) => r.status),
          Array(stale).fill(200),
        );
        await pollUntil("the connections to go back to the pool", () => pt.connections().idle === stale);
        const reply = await send(front.port, { path: "/x" });
        assert.equal(reply.status, expected, reply.body.toString());
        assert.equal(await retries(metrics), 3);
        // Every attempt went out on a connection of its own.
        const carried = device.connections.filter((c) => c.includes("GET /x HTTP/1.1")).length;
        assert.equal(carried, 4);
        await settled(pt);
      });
    }
  });

  it("does not send a POST again: 502 GW_UPSTREAM_UNREACHABLE, and the device saw it once", async (t) => {
    const { front, pt, metrics, device } = await afterOneRequest(t);
    const reply = await send(front.port, { method: "POST", path: "/buffered/x", body: "on" });
    assert.deepEqual([reply.status, errorCode(reply)], [502, "GW_UPSTREAM_UNREACHABLE"]);
    assert.equal(await retries(metrics), 0);
    assert.ok(device.connections.flat().filter((line) => line.startsWith("POST")).length <= 1, JSON.stringify(device.connections));
    await settled(pt);
  });

  it("does not send a PUT again whose body streamed from the client: it cannot be replayed", async (t) => {
    const { front, pt, metrics, device } = await afterOneRequest(t);
    const reply = await send(front.port, { method: "PUT", path: "/streamed/x", body: "on" });
    assert.deepEqual([reply.status, errorCode(reply)], [502, "GW_UPSTREAM_UNREACHABLE"]);
    assert.equal(await retries(metrics), 0);
    assert.ok(device.connections.flat().filter((line) => line.startsWith("PUT")).length <= 1, JSON.stringify(device.connections));
    await settled(pt);
  });
});
