// The client side of the HTTP/1.1 contract, over raw sockets against a whole gateway (real Redis, real
// Prosody, one device behind its agent and one on the HTTP pass-through):
// - a client that writes a whole body over GATEWAY_MAX_BODY_BYTES before it reads (no Expect: 100-continue,
//   what most old HTTP clients do) reads the 413: the gateway answers at once, then lingers, reading and
//   dropping the rest, instead of closing on a receive buffer full of body (which makes the kernel send a
//   reset, RFC 9112 §9.6); the linger is bounded in time, idle gap and by a stop;
// - RFC 9112 §3.2: more than one Host line, or a Host that is not `uri-host [ ":" port ]`, is 400.
// No device ever sees any of these requests.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startDeviceServer } from "../helpers/http-device.js";
import { startStack, Teardown, type Stack, testComponents } from "../helpers/stack.js";

const ADMIN_TOKEN = "client-contract-admin-token-01";
const MAX_BODY = 1024 * 1024;
const SENT_BODY = 9 * 1024 * 1024;
const PIECE = 256 * 1024;
const HOST_SUFFIX = "devices.test";
const PIECE_SMALL = Buffer.alloc(1024, "t");
/** Far more than any bounded test here takes: a client "giving up" by then means the server never closed. */
const GIVE_UP_MS = 30_000;

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: string;
  /** What went wrong on the client's socket, if anything (EPIPE, ECONNRESET...). */
  error: string | undefined;
  /** The server closed the connection after the answer. */
  closed: boolean;
}

/** What the client read (status 0 when it read nothing), and what its socket reported. */
function parse(raw: Buffer, error: string | undefined, closed: boolean): Answer {
  const text = raw.toString("latin1");
  const end = text.indexOf("\r\n\r\n");
  const head = end < 0 ? text : text.slice(0, end);
  const [statusLine = "", ...lines] = head.split("\r\n");
  const headers = new Map(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
  return { status: Number(statusLine.split(" ")[1]), headers, body: end < 0 ? "" : text.slice(end + 4), error, closed };
}

/** Writes `data` and resolves once it is handed to the kernel; rejects with the socket's error. */
function write(socket: Socket, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => socket.write(data, (err) => (err ? reject(err) : resolve())));
}

/**
 * A client as old HTTP clients are: it writes the head and the whole body (`SENT_BODY` bytes, with
 * Content-Length or chunked) without reading, and only then reads the answer, until the server closes.
 */
async function uploadThenRead(port: number, head: string, chunked: boolean): Promise<Answer> {
  const socket = connect(port, "127.0.0.1");
  socket.pause(); // nothing is read before the body is out: the answer waits in the receive buffer
  let error: string | undefined;
  socket.on("error", (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  const piece = Buffer.alloc(PIECE, "z");
  try {
    await write(socket, `${head}${chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${SENT_BODY}`}\r\n\r\n`);
    for (let sent = 0; sent < SENT_BODY; sent += PIECE) {
      await write(socket, chunked ? Buffer.concat([Buffer.from(`${PIECE.toString(16)}\r\n`), piece, Buffer.from("\r\n")]) : piece);
    }
    if (chunked) await write(socket, "0\r\n\r\n");
  } catch (err) {
    error ??= (err as NodeJS.ErrnoException).code ?? String(err);
  }
  const chunks: Buffer[] = [];
  socket.on("data", (c: Buffer) => chunks.push(c));
  socket.resume();
  const bound = setTimeout(() => socket.destroy(new Error("no close within 15 s")), 15_000);
  await closed;
  clearTimeout(bound);
  return parse(Buffer.concat(chunks), error, true);
}

/** Sends `text` on a fresh connection, reads until the server closes (a client giving up after GIVE_UP_MS: it never did). */
function exchange(port: number, text: string): Promise<Answer> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let closed = false;
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    const timer = setTimeout(() => socket.destroy(), GIVE_UP_MS);
    socket.on("end", () => (closed = true));
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(parse(Buffer.concat(chunks), error, closed));
    });
    socket.write(text);
  });
}

/**
 * A client that keeps sending: `head`, then `PIECE_SMALL` bytes every `gapMs` (`pieces` times, or until the
 * server closes, or until `giveUpMs` pass), reading all along. It never closes its side of the connection on
 * its own, even after the server's FIN (allowHalfOpen): only the server's close ends it before it gives up.
 */
function trickle(port: number, head: string, opts: { pieces: number; gapMs: number; giveUpMs: number }) {
  const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  const chunks: Buffer[] = [];
  let error: string | undefined;
  let gaveUp = false;
  let answered!: () => void;
  const read = new Promise<void>((resolve) => (answered = resolve));
  socket.on("data", (c: Buffer) => {
    chunks.push(c);
    if (Buffer.concat(chunks).includes("\r\n\r\n")) answered();
  });
  socket.on("error", (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
  const giveUp = setTimeout(() => {
    gaveUp = true;
    socket.destroy();
  }, opts.giveUpMs);
  const done = new Promise<{ answer: Answer; closedByServer: boolean }>((resolve) =>
    socket.once("close", () => {
      clearTimeout(giveUp);
      resolve({ answer: parse(Buffer.concat(chunks), error, true), closedByServer: !gaveUp });
    }),
  );
  void (async () => {
    socket.write(head);
    for (let i = 0; i < opts.pieces && !socket.destroyed; i++) {
      await new Promise((r) => setTimeout(r, opts.gapMs)); // the client's own pace, not a wait for the server
      if (!socket.destroyed) socket.write(PIECE_SMALL);
    }
  })();
  /** `read`: the answer's head is in; `done`: the connection is closed; `close`: the client hangs up. */
  return { read, done, close: () => socket.destroy() };
}

function assertRefused(answer: Answer, status: number, code: string, what: string): void {
  assert.equal(answer.status, status, `${what}: ${answer.status === 0 ? `nothing read (${answer.error ?? "closed"})` : answer.body}`);
  const body = JSON.parse(answer.body) as { error: { code: string } };
  assert.equal(body.error.code, code, what);
  assert.ok(answer.headers.get("x-request-id"), `${what}: X-Request-Id`);
  assert.equal(answer.headers.get("content-type"), "application/json; charset=utf-8", what);
  assert.equal(answer.headers.get("connection"), "close", what);
  assert.ok(answer.closed, `${what}: the connection is closed after the answer`);
}

describe("the client-side HTTP/1.1 contract", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  /** Requests each device handled to the end (a request cut off while it came in does not count). */
  const handled = { xmpp: 0, http: 0 };
  let legacyUrl: string;

  /** Registers `id` on `gateway` as a device behind the HTTP pass-through (the legacy device server). */
  async function register(gateway: RunningGateway, id: string): Promise<void> {
    const put = await fetch(`${gateway.url}/admin/devices/${id}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify({ transport: "http", httpTarget: legacyUrl }),
    });
    assert.equal(put.status, 201);
  }

  const device = (kind: keyof typeof handled) => (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => {
      handled[kind]++;
      res.end("device answer");
    });
  };

  before(async () => {
    // Three components: the gateway under test, and two more for the gateways with short linger bounds.
    const components = testComponents(3);
    stack = teardown.stopLater("stack", await startStack({ prosody: { components } }));
    gw = teardown.stopLater(
      "gateway",
      await startGateway(stack, {
        GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
        GATEWAY_MAX_BODY_BYTES: String(MAX_BODY),
        GATEWAY_DEVICE_HOST_SUFFIX: HOST_SUFFIX,
      }),
    );
    teardown.stopLater("fleet", await startFleet(stack.prosody, ["cx"], () => device("xmpp")));
    legacyUrl = teardown.stopLater("legacy device", await startDeviceServer(device("http"))).url;
    await register(gw, "ch");
  });
  after(() => teardown.run());

  const port = () => gw.gateway.http.port;

  for (const id of ["cx", "ch"]) {
    const path = id === "cx" ? "over XMPP" : "over the HTTP pass-through";
    for (const addressing of ["path", "host"] as const) {
      const head = (method: string) =>
        addressing === "path"
          ? `${method} /devices/${id}/upload HTTP/1.1\r\nHost: gw.test\r\n`
          : `${method} /upload HTTP/1.1\r\nHost: ${id}.${HOST_SUFFIX}\r\n`;

      describe(`${path}, ${addressing} addressing`, () => {
        it("a client that writes 9 MiB with Content-Length before reading reads the 413, without a reset", async () => {
          const answer = await uploadThenRead(port(), head("POST"), false);
          assert.equal(answer.error, undefined, "no EPIPE / ECONNRESET on the client's writes or reads");
          assertRefused(answer, 413, "GW_PAYLOAD_TOO_LARGE", "declared over the limit");
        });

        it("a client that writes 9 MiB chunked before reading reads the 413, without a reset", async () => {
          const answer = await uploadThenRead(port(), head("PUT"), true);
          assert.equal(answer.error, undefined, "no EPIPE / ECONNRESET on the client's writes or reads");
          assertRefused(answer, 413, "GW_PAYLOAD_TOO_LARGE", "chunked, cut at the limit");
        });
      });
    }
  }

  describe("RFC 9112 §3.2 Host rules", () => {
    for (const id of ["cx", "ch"]) {
      const hostName = `${id}.${HOST_SUFFIX}`;
      const cases: Record<string, { target: string; hosts: string[] }> = {
        "path: two Host lines, same value": { target: `/devices/${id}/a`, hosts: ["gw.test", "gw.test"] },
        "path: two Host lines, the device's first": { target: `/devices/${id}/a`, hosts: [hostName, "gw.test"] },
        "path: two Host lines, the device's last": { target: `/devices/${id}/a`, hosts: ["gw.test", hostName] },
        "path: Host empty": { target: `/devices/${id}/a`, hosts: [""] },
        "path: Host a b": { target: `/devices/${id}/a`, hosts: ["a b"] },
        "path: Host user@x": { target: `/devices/${id}/a`, hosts: ["user@x"] },
        "path: Host x:99999": { target: `/devices/${id}/a`, hosts: ["x:99999"] },
        "path: a valid and an invalid Host": { target: `/devices/${id}/a`, hosts: ["gw.test", "a b"] },
        "path: an invalid and a valid Host": { target: `/devices/${id}/a`, hosts: ["a b", "gw.test"] },
        "host: two Host lines, same value": { target: "/a", hosts: [hostName, hostName] },
        "host: two Host lines, another device last": { target: "/a", hosts: [hostName, `other.${HOST_SUFFIX}`] },
        "host: two Host lines, another device first": { target: "/a", hosts: [`other.${HOST_SUFFIX}`, hostName] },
        "host: the device, then the gateway's name": { target: "/a", hosts: [hostName, "gw.test"] },
        "host: the gateway's name, then the device": { target: "/a", hosts: ["gw.test", hostName] },
        "host: Host empty, then the device": { target: "/a", hosts: ["", hostName] },
        "host: the device, then Host empty": { target: "/a", hosts: [hostName, ""] },
        "host: user info": { target: "/a", hosts: [`user@${hostName}`] },
        "host: a port over 65535": { target: "/a", hosts: [`${hostName}:99999`] },
        "host: a space inside": { target: "/a", hosts: [`${hostName} x`] },
        "absolute form: two Host lines": { target: `http://${hostName}/a`, hosts: [hostName, hostName] },
        "absolute form: an invalid Host": { target: `http://${hostName}/a`, hosts: [`user@${hostName}`] },
      };
      it(`refuses each with 400 GW_BAD_REQUEST and a close, before device ${id} sees it`, async () => {
        for (const [what, { target, hosts }] of Object.entries(cases)) {
          const lines = hosts.map((h) => `Host: ${h}\r\n`).join("");
          for (const method of ["GET", "POST"]) {
            const body = method === "POST" ? "Content-Length: 5\r\n\r\nhello" : "\r\n";
            assertRefused(
              await exchange(port(), `${method} ${target} HTTP/1.1\r\n${lines}${body}`),
              400,
              "GW_BAD_REQUEST",
              `${id} ${method} ${what}`,
            );
          }
        }
      });
    }

    it("an absolute-form target names the device itself: one valid Host line, or an empty one, is served", async () => {
      const before = { ...handled };
      for (const host of ["cx.devices.test", "", "10.0.0.1:8080"]) {
        const answer = await exchange(port(), `GET http://cx.${HOST_SUFFIX}/abs HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
        assert.equal(answer.status, 200, `Host: ${JSON.stringify(host)}: ${answer.body}`);
      }
      assert.deepEqual(handled, { ...before, xmpp: before.xmpp + 3 });
    });
  });

  it("a request pipelined after a body over the limit is never served: one answer, the 413", async () => {
    const before = { ...handled };
    const socket = connect(port(), "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("error", () => undefined);
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const size = MAX_BODY + 4096;
    await write(socket, `POST /devices/cx/up HTTP/1.1\r\nHost: gw.test\r\nContent-Length: ${size}\r\n\r\n`);
    await write(socket, Buffer.alloc(size, "p"));
    await write(socket, "GET /devices/cx/pipelined HTTP/1.1\r\nHost: gw.test\r\n\r\n").catch(() => undefined);
    await closed;
    const text = Buffer.concat(chunks).toString("latin1");
    assert.equal(text.split("HTTP/1.1 ").length - 1, 1, `one answer only: ${text}`);
    assert.match(text, /^HTTP\/1\.1 413 /);
    assert.deepEqual(handled, before, "no device saw the body nor the pipelined request");
  });

  it("no device saw any refused request, and both still serve a good one", async () => {
    assert.deepEqual(handled, { xmpp: 3, http: 0 }, "only the three absolute-form requests");
    for (const id of ["cx", "ch"]) {
      const r = await fetch(`${gw.url}/devices/${id}/ok`);
      assert.deepEqual([r.status, await r.text()], [200, "device answer"], id);
    }
    assert.deepEqual(handled, { xmpp: 4, http: 1 });
  });

  describe("the linger's bounds", () => {
    const overLimit = `POST /devices/cx/up HTTP/1.1\r\nHost: gw.test\r\nContent-Length: ${100 * 1024 * 1024}\r\n\r\n`;

    it("a client that never stops sending is closed after GATEWAY_LINGER_MS, having read the 413", async () => {
      // Idle bound far away: only the total bound can end this linger.
      const bounded = teardown.stopLater(
        "gateway (short linger)",
        await startGateway(stack, {
          GATEWAY_MAX_BODY_BYTES: "1024",
          GATEWAY_LINGER_MS: "1500",
          GATEWAY_LINGER_IDLE_MS: "60000",
          XMPP_COMPONENT_DOMAIN: "gw2.localhost",
          XMPP_COMPONENT_SECRET: "s2",
        }),
      );
      const client = trickle(bounded.gateway.http.port, overLimit, { pieces: 100_000, gapMs: 20, giveUpMs: GIVE_UP_MS });
      await client.read;
      const { answer, closedByServer } = await client.done;
      assertRefused({ ...answer, error: undefined }, 413, "GW_PAYLOAD_TOO_LARGE", "trickled");
      assert.ok(closedByServer, "the gateway closed the connection; the client did not have to give up");
      assert.equal(bounded.gateway.http.lingeringConnections, 0);
    });

    describe("with a long total bound and a short idle bound", () => {
      let lingering: RunningGateway;
      let stopped = false;
      before(async () => {
        lingering = await startGateway(stack, {
          GATEWAY_MAX_BODY_BYTES: "1024",
          GATEWAY_LINGER_MS: "600000",
          // Long enough that a trickle every 20 ms is never idle, even on a machine that stalls now and then.
          GATEWAY_LINGER_IDLE_MS: "4000",
          GATEWAY_MAX_IN_FLIGHT: "1",
          GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
          XMPP_COMPONENT_DOMAIN: "gw3.localhost",
          XMPP_COMPONENT_SECRET: "s3",
        });
        await register(lingering, "ch");
      });
      after(async () => {
        if (lingering && !stopped) await lingering.stop();
      });
      const lingeringCount = () => lingering.gateway.http.lingeringConnections;

      it("a client that stops sending without closing is closed after GATEWAY_LINGER_IDLE_MS", async () => {
        const client = trickle(lingering.gateway.http.port, overLimit, { pieces: 3, gapMs: 10, giveUpMs: GIVE_UP_MS });
        await client.read;
        await pollUntil("the connection to linger", () => lingeringCount() === 1);
        // Well under the 10 min total bound: only the idle bound can have ended it.
        await pollUntil("the idle bound to close the connection", () => lingeringCount() === 0, { timeoutMs: 20_000 });
        client.close(); // it never learns on its own: it sends nothing more, and the gateway's FIN came long ago
      });

      it("a lingering connection is no request in flight (GATEWAY_MAX_IN_FLIGHT=1), and a stop does not wait out its linger", async () => {
        const client = trickle(lingering.gateway.http.port, overLimit, { pieces: 100_000, gapMs: 20, giveUpMs: GIVE_UP_MS });
        await client.read;
        await pollUntil("the connection to linger", () => lingeringCount() === 1);
        const r = await fetch(`${lingering.url}/devices/ch/while-lingering`);
        assert.deepEqual([r.status, await r.text()], [200, "device answer"], "served while a connection lingers");
        assert.equal(lingeringCount(), 1, "still lingering while the other request was served");

        stopped = true;
        await lingering.stop();
        const { answer, closedByServer } = await client.done;
        assert.ok(closedByServer, "the stop closed the lingering connection; the client did not have to give up");
        assertRefused({ ...answer, error: undefined }, 413, "GW_PAYLOAD_TOO_LARGE", "lingering through a stop");
      });
    });
  });
});
