// Hostile and broken HTTP clients against a whole gateway (real Redis, real Prosody, one device behind its
// agent and one on the HTTP pass-through), over raw sockets, so that exactly the bytes under test are sent:
// header floods and oversized heads, slow heads and slow bodies, bodies over the limit with and without
// Content-Length, framing that could smuggle a second request, path tricks, non-device targets, CONNECT and
// very long URLs. Each gets a 4xx catalogue error as JSON, no device handles any of them, and the gateway
// serves the next good request.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { connect, createServer, type AddressInfo, type Server } from "node:net";
import { after, before, describe, it } from "node:test";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startDeviceServer } from "../helpers/http-device.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const ADMIN_TOKEN = "hostile-clients-admin-token-01";
const MAX_BODY = 1024;

interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: string;
  /** The server closed the connection after the answer. */
  closed: boolean;
}

describe("hostile HTTP clients", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  /** Requests each device handled to the end (a request cut off while it came in does not count). */
  const handled = { xmpp: 0, http: 0 };
  let bystander: Server;
  let bystanderConnections = 0;

  const device = (kind: keyof typeof handled) => (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => {
      handled[kind]++;
      res.end("device answer");
    });
  };

  /**
   * Sends `parts` (with `gapMs` between them) on a fresh connection and reads the answer: resolved once it is
   * complete (its head and Content-Length bytes) and, if it says `Connection: close`, once the server has
   * closed. `waitMs` only bounds a server that never answers or never closes; the test never waits it out.
   */
  function raw(parts: Array<string | Buffer>, opts: { gapMs?: number; waitMs?: number } = {}): Promise<RawAnswer | undefined> {
    return new Promise((resolve) => {
      const socket = connect(gw.gateway.http.port, "127.0.0.1");
      const chunks: Buffer[] = [];
      let closed = false;
      let settled = false;
      const parse = (): RawAnswer | undefined => {
        const text = Buffer.concat(chunks).toString("latin1");
        if (!text) return undefined;
        const [head = "", ...rest] = text.split("\r\n\r\n");
        const [statusLine = "", ...lines] = head.split("\r\n");
        const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
        return { status: Number(statusLine.split(" ")[1]), headers, body: rest.join("\r\n\r\n"), closed };
      };
      const finish = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(parse());
      };
      /** The whole answer is in, and the connection stays open, or is closed as announced. */
      const complete = (): boolean => {
        const text = Buffer.concat(chunks).toString("latin1");
        const end = text.indexOf("\r\n\r\n");
        if (end < 0) return false;
        const answer = parse() as RawAnswer;
        const length = Number(answer.headers.get("content-length") ?? NaN);
        if (!Number.isInteger(length) || Buffer.byteLength(text.slice(end + 4), "latin1") < length) return false;
        return answer.headers.get("connection")?.toLowerCase() !== "close" || closed;
      };
      socket.on("data", (c: Buffer) => {
        chunks.push(c);
        if (complete()) finish();
      });
      socket.on("error", () => undefined); // a reset after the answer is the point of some cases
      socket.on("close", () => {
        closed = true;
        finish();
      });
      const timer = setTimeout(finish, opts.waitMs ?? 30_000);
      void (async () => {
        for (const part of parts) {
          if (socket.destroyed) return;
          socket.write(part);
          if (opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
        }
      })();
    });
  }

  /**
   * A refusal as JSON with the catalogue code. The connection is closed after it (what came after a bad or
   * oversized head or body cannot be framed), unless `framed`: a well-framed request refused for its target
   * leaves the connection usable (RFC 9112 §9.3), and then the answer must be complete and not announce a close.
   */
  function assertRefused(answer: RawAnswer | undefined, status: number, code: string, what: string, { framed = false } = {}): void {
    assert.ok(answer, `${what}: an answer`);
    assert.equal(answer.status, status, `${what}: ${answer.body}`);
    const body = JSON.parse(answer.body) as { error: { code: string; requestId: string } };
    assert.equal(body.error.code, code, what);
    assert.ok(answer.headers.get("x-request-id"), `${what}: X-Request-Id`);
    assert.equal(answer.headers.get("content-type"), "application/json; charset=utf-8", what);
    if (!framed) assert.ok(answer.closed, `${what}: the connection is closed after a refused request`);
    else
      assert.notEqual(answer.headers.get("connection")?.toLowerCase(), "close", `${what}: a well-framed request's connection stays usable`);
  }

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater(
      "gateway",
      await startGateway(stack, {
        GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
        GATEWAY_MAX_BODY_BYTES: String(MAX_BODY),
        GATEWAY_MAX_HEADERS: "50",
        GATEWAY_HEADERS_TIMEOUT_MS: "400",
        GATEWAY_RECEIVE_TIMEOUT_MS: "1200",
      }),
    );
    teardown.stopLater("fleet", await startFleet(stack.prosody, ["hx"], () => device("xmpp")));
    const legacy = teardown.stopLater("legacy device", await startDeviceServer(device("http")));
    const put = await fetch(`${gw.url}/admin/devices/hh`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ transport: "http", httpTarget: legacy.url }),
    });
    assert.equal(put.status, 201);
    // A local service that is no device: a forward-proxy request naming it must never connect to it.
    bystander = createServer((s) => {
      bystanderConnections++;
      s.destroy();
    });
    await new Promise<void>((r) => bystander.listen(0, "127.0.0.1", r));
    teardown.stopLater("bystander", { stop: () => new Promise<void>((r) => bystander.close(() => r())) });
  });
  after(() => teardown.run());

  const head = (target: string, extra = "", method = "GET") => `${method} ${target} HTTP/1.1\r\nHost: gw.test\r\n${extra}`;

  for (const id of ["hx", "hh"]) {
    describe(`to ${id === "hx" ? "a device over XMPP" : "a device over the HTTP pass-through"}`, () => {
      it("header flood: more fields than GATEWAY_MAX_HEADERS is 431", async () => {
        const flood = Array.from({ length: 300 }, (_, i) => `X-F${i}: v\r\n`).join("");
        assertRefused(await raw([`${head(`/devices/${id}/a`, flood)}\r\n`]), 431, "GW_HEADERS_TOO_LARGE", "flood");
      });

      it("a head over 16 KiB is 431", async () => {
        assertRefused(
          await raw([`${head(`/devices/${id}/a`, `X-Big: ${"b".repeat(20_000)}\r\n`)}\r\n`]),
          431,
          "GW_HEADERS_TOO_LARGE",
          "big head",
        );
      });

      it("slowloris: a head that never ends is 408", async () => {
        const trickle = Array.from({ length: 40 }, (_, i) => `X-Slow-${i}: x\r\n`);
        assertRefused(
          await raw([head(`/devices/${id}/a`), ...trickle], { gapMs: 100, waitMs: 8000 }),
          408,
          "GW_REQUEST_TIMEOUT",
          "slow head",
        );
      });

      it("a body that stalls is 408", async () => {
        const answer = await raw([`${head(`/devices/${id}/a`, "Content-Length: 100\r\n", "POST")}\r\n`, "only ten b"], { waitMs: 8000 });
        assertRefused(answer, 408, "GW_REQUEST_TIMEOUT", "stalled body");
      });

      it("a body over the limit is 413, with and without Content-Length", async () => {
        const declared = await raw([
          `${head(`/devices/${id}/a`, `Content-Length: ${MAX_BODY + 1}\r\n`, "POST")}\r\n`,
          "x".repeat(MAX_BODY + 1),
        ]);
        assertRefused(declared, 413, "GW_PAYLOAD_TOO_LARGE", "declared");
        const chunk = "y".repeat(MAX_BODY);
        const chunked = await raw([
          `${head(`/devices/${id}/a`, "Transfer-Encoding: chunked\r\n", "POST")}\r\n`,
          `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
          `${chunk.length.toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
        ]);
        assertRefused(chunked, 413, "GW_PAYLOAD_TOO_LARGE", "chunked");
      });

      it("framing that could smuggle a request is 400, and the smuggled request goes nowhere", async () => {
        const smuggled = `GET /devices/${id}/smuggled HTTP/1.1\r\nHost: gw.test\r\n\r\n`;
        const cases: Record<string, string> = {
          "Content-Length with Transfer-Encoding": `Content-Length: ${smuggled.length + 5}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
          "two Content-Lengths": `Content-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
          "a coding after chunked": `Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`,
          "Content-Length with a space before the colon": `Content-Length : ${smuggled.length}\r\n\r\n${smuggled}`,
          "a folded header line": `X-A: a\r\n Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
          "a bad chunk size": `Transfer-Encoding: chunked\r\n\r\nzz\r\n${smuggled}\r\n0\r\n\r\n`,
        };
        for (const [what, rest] of Object.entries(cases)) {
          assertRefused(await raw([head(`/devices/${id}/a`, "", "POST") + rest]), 400, "GW_BAD_REQUEST", what);
        }
      });
    });
  }

  it("path tricks: dot-segments, encoded slashes, NUL, non-ASCII ids are 400 before any device", async () => {
    const ids = ["..", ".", "hx%2F..%2Fadmin", "hx%00", "h%78", "d\u00e9v", "%2e%2e"];
    for (const id of ids) {
      const answer = await raw([Buffer.from(`${head(`/devices/${id}/a`)}\r\n`, "utf8")]);
      assert.ok(answer && answer.status === 400, `${id}: ${answer?.status} ${answer?.body}`);
      assert.match(answer.body, /"code":"GW_BAD_(DEVICE_ID|REQUEST)"/, id);
    }
    assertRefused(await raw([`GET /devices/hx\0/a HTTP/1.1\r\nHost: gw.test\r\n\r\n`]), 400, "GW_BAD_REQUEST", "raw NUL");
    const traversal = await raw([`${head("/devices/../admin/devices", `Authorization: Bearer ${ADMIN_TOKEN}\r\n`)}\r\n`]);
    assert.equal(traversal?.status, 400, "no way into the admin API through a device path");
  });

  it("absolute URIs to non-devices are 403 and never connect; CONNECT is 405", async () => {
    const port = (bystander.address() as AddressInfo).port;
    for (const target of [`http://127.0.0.1:${port}/`, `http://localhost:${port}/x`, `https://127.0.0.1:${port}/`]) {
      // Complete and well framed, refused for its target only: the connection may stay open.
      assertRefused(await raw([`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`]), 403, "GW_NOT_A_DEVICE", target, {
        framed: true,
      });
    }
    assertRefused(
      await raw([`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`]),
      405,
      "GW_METHOD_NOT_ALLOWED",
      "CONNECT",
    );
    assert.equal(bystanderConnections, 0, "the gateway never connected to the named address");
  });

  it("very long URLs: over 8192 is 400, over the 16 KiB head is 431", async () => {
    const long = await raw([`${head(`/devices/hx/${"a".repeat(9000)}`)}\r\n`]);
    assert.equal(long?.status, 400);
    assert.match(long.body, /"code":"GW_BAD_DEVICE_ID"/);
    assertRefused(await raw([`${head(`/devices/hx/${"a".repeat(20_000)}`)}\r\n`]), 431, "GW_HEADERS_TOO_LARGE", "huge URL");
  });

  it("HTTP/1.1 without Host is 400", async () => {
    assertRefused(await raw(["GET /devices/hx/a HTTP/1.1\r\n\r\n"]), 400, "GW_BAD_REQUEST", "no Host");
  });

  it("reached no device with any of it, and still serves a good request on both transports", async () => {
    assert.deepEqual(handled, { xmpp: 0, http: 0 });
    for (const id of ["hx", "hh"]) {
      const r = await fetch(`${gw.url}/devices/${id}/ok`);
      assert.deepEqual([r.status, await r.text()], [200, "device answer"], id);
    }
    assert.deepEqual(handled, { xmpp: 1, http: 1 });
  });
});
