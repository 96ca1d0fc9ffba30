// What a broken legacy HTTP device may send back, case by case: derived from RFC 9112 (message syntax,
// framing) and from the errors node's parser (llhttp, strict: `insecureHTTPParser` off) raises. Played by a
// raw TCP device (raw-http-device.ts); used by the hostile-legacy-devices suite and the process-level test.
import { startDeviceServer, type DeviceServer } from "./http-device.js";
import { startRawDevice, type RawDevice, type Step } from "./raw-http-device.js";
import type { Teardown } from "./stack.js";

/** What the client must see when the case runs through the gateway's pass-through. */
export type Expected =
  /** A catalogue error, written before anything of the device's answer went out. */
  | { error: "GW_BAD_UPSTREAM_REPLY" | "GW_UPSTREAM_UNREACHABLE" | "GW_UPSTREAM_TIMEOUT"; reason?: string }
  /** The connection ends before the response does (after its head, or instead of one): never a complete answer. */
  | {
      cut: "GW_BAD_UPSTREAM_REPLY" | "GW_UPSTREAM_UNREACHABLE" | "GW_UPSTREAM_TIMEOUT";
      reason?: string;
      /** A reset may overtake the bytes before it (the kernel drops what the gateway had not read): then a catalogue error. */
      orError?: true;
    }
  /** Relayed: the device's answer is valid enough (or its oddity is the parser's to absorb). */
  | { relayed: { status: number; statusMessage?: string; body: string } };

export interface HostileReply {
  name: string;
  steps: Step[];
  expect: Expected;
  /** The request carries this body (POST): for a device that answers before reading it. */
  postBody?: number;
  /** The client's deadline (X-Gateway-Timeout), for cases that end at it. */
  deadlineMs?: number;
}

const CRLF = "\r\n";

/** A whole response: status line, fields, empty line, body. */
export function reply(statusLine: string, fields: string[] = ["Content-Length: 2"], body = "ok"): string {
  return statusLine + CRLF + fields.map((f) => f + CRLF).join("") + CRLF + body;
}

const bad = (reason?: string): Expected => ({ error: "GW_BAD_UPSTREAM_REPLY", ...(reason ? { reason } : {}) });
const cutBad = (reason?: string): Expected => ({ cut: "GW_BAD_UPSTREAM_REPLY", ...(reason ? { reason } : {}) });

/** A TLS 1.2 ClientHello's first bytes: a device port that speaks TLS, reached over plain http. */
const TLS_HELLO = Buffer.from("16030100a5010000a10303" + "00".repeat(32) + "000020c02bc02f", "hex");

export const HOSTILE_REPLIES: readonly HostileReply[] = [
  // Status line (RFC 9112 §4: status-code = 3DIGIT; RFC 9110 §15: 100..599).
  { name: "status code missing", steps: [reply("HTTP/1.1  OK")], expect: bad("HPE_INVALID_STATUS") },
  { name: "status code of two digits", steps: [reply("HTTP/1.1 20 OK")], expect: bad("HPE_INVALID_STATUS") },
  { name: "status code of four digits", steps: [reply("HTTP/1.1 2000 OK")], expect: bad("HPE_INVALID_STATUS") },
  { name: "status code with a letter", steps: [reply("HTTP/1.1 2x0 OK")], expect: bad("HPE_INVALID_STATUS") },
  { name: "status 099 (llhttp takes it, writeHead throws)", steps: [reply("HTTP/1.1 099 Low")], expect: bad("status") },
  { name: "status 000", steps: [reply("HTTP/1.1 000 Zero")], expect: bad("status") },
  { name: "status 600", steps: [reply("HTTP/1.1 600 Beyond")], expect: bad("status") },
  { name: "status 999", steps: [reply("HTTP/1.1 999 Weird")], expect: bad("status") },
  {
    name: "101 Switching Protocols nobody asked for",
    steps: [reply("HTTP/1.1 101 Switching Protocols", ["Upgrade: websocket", "Connection: Upgrade"], "")],
    expect: bad("interim-status"),
  },
  { name: "HTTP version 2.0 on the status line", steps: [reply("HTTP/2.0 200 OK")], expect: bad("version") },
  { name: "HTTP version 1.x with a letter", steps: [reply("HTTP/1.x 200 OK")], expect: bad("HPE_INVALID_VERSION") },
  // Reason phrase (RFC 9112 §4: HTAB / SP / VCHAR / obs-text).
  { name: "reason phrase with DEL", steps: [reply("HTTP/1.1 200 O\x7fK")], expect: bad("reason-phrase") },
  { name: "reason phrase with NUL", steps: [reply("HTTP/1.1 200 O\x00K")], expect: bad() },
  { name: "reason phrase with ESC and SOH", steps: [reply("HTTP/1.1 200 O\x1b\x01K")], expect: bad() },
  {
    name: "reason phrase with obs-text: relayed as sent",
    steps: [reply("HTTP/1.1 200 \xc7a va")],
    expect: { relayed: { status: 200, statusMessage: "\xc7a va", body: "ok" } },
  },
  // Header fields (RFC 9110 §5.1, §5.5; RFC 9112 §5).
  { name: "control character in a header value", steps: [reply("HTTP/1.1 200 OK", ["X-A: a\x01b", "Content-Length: 2"])], expect: bad() },
  { name: "DEL in a header value", steps: [reply("HTTP/1.1 200 OK", ["X-A: a\x7fb", "Content-Length: 2"])], expect: bad() },
  {
    name: "space before the colon",
    steps: [reply("HTTP/1.1 200 OK", ["X-A : b", "Content-Length: 2"])],
    expect: bad("HPE_INVALID_HEADER_TOKEN"),
  },
  {
    name: "header name that is not a token",
    steps: [reply("HTTP/1.1 200 OK", ["X(A): b", "Content-Length: 2"])],
    expect: bad("HPE_INVALID_HEADER_TOKEN"),
  },
  { name: "obs-fold", steps: [reply("HTTP/1.1 200 OK", ["X-A: a", " folded", "Content-Length: 2"])], expect: bad() },
  { name: "bare LF line ends", steps: ["HTTP/1.1 200 OK\nContent-Length: 2\n\nok"], expect: bad() },
  { name: "bare CR in the head", steps: ["HTTP/1.1 200 OK\rContent-Length: 2\r\n\r\nok"], expect: bad() },
  {
    name: "more header fields than a device reply may have",
    steps: [reply("HTTP/1.1 200 OK", [...Array.from({ length: 150 }, (_, i) => `X-F${i}: v`), "Content-Length: 2"])],
    expect: bad("header-count"),
  },
  {
    name: "head over 16 KiB",
    steps: [reply("HTTP/1.1 200 OK", [`X-Big: ${"a".repeat(20_000)}`, "Content-Length: 2"])],
    expect: bad("HPE_HEADER_OVERFLOW"),
  },
  // Framing (RFC 9112 §6).
  {
    name: "two different Content-Lengths",
    steps: [reply("HTTP/1.1 200 OK", ["Content-Length: 2", "Content-Length: 3"])],
    expect: bad("HPE_UNEXPECTED_CONTENT_LENGTH"),
  },
  {
    name: "the same Content-Length twice",
    steps: [reply("HTTP/1.1 200 OK", ["Content-Length: 2", "Content-Length: 2"])],
    expect: bad("HPE_UNEXPECTED_CONTENT_LENGTH"),
  },
  {
    name: "Content-Length that is not a number",
    steps: [reply("HTTP/1.1 200 OK", ["Content-Length: 2x"])],
    expect: bad("HPE_INVALID_CONTENT_LENGTH"),
  },
  {
    name: "Content-Length and Transfer-Encoding",
    steps: [reply("HTTP/1.1 200 OK", ["Content-Length: 2", "Transfer-Encoding: chunked"], "2\r\nok\r\n0\r\n\r\n")],
    expect: bad(),
  },
  { name: "Transfer-Encoding not ending in chunked", steps: [reply("HTTP/1.1 200 OK", ["Transfer-Encoding: gzip"], "ok")], expect: bad() },
  {
    name: "Transfer-Encoding chunked, then gzip",
    steps: [reply("HTTP/1.1 200 OK", ["Transfer-Encoding: chunked, gzip"], "ok")],
    expect: bad(),
  },
  {
    name: "chunk size that is not hex",
    steps: [reply("HTTP/1.1 200 OK", ["Transfer-Encoding: chunked"], "zz\r\nok\r\n0\r\n\r\n")],
    expect: cutBad("HPE_INVALID_CHUNK_SIZE"),
  },
  {
    name: "chunk size that overflows 64 bits",
    steps: [reply("HTTP/1.1 200 OK", ["Transfer-Encoding: chunked"], "ffffffffffffffffffff\r\nok\r\n")],
    expect: cutBad("HPE_INVALID_CHUNK_SIZE"),
  },
  {
    name: "body shorter than its Content-Length, then close",
    steps: [reply("HTTP/1.1 200 OK", ["Content-Length: 100"], "only ten.."), { close: true }],
    expect: { cut: "GW_UPSTREAM_UNREACHABLE" },
  },
  {
    name: "chunked body that stops before its last chunk, then close",
    steps: [reply("HTTP/1.1 200 OK", ["Transfer-Encoding: chunked"], "2\r\nok\r\n"), { close: true }],
    expect: { cut: "GW_UPSTREAM_UNREACHABLE" },
  },
  {
    name: "body that trickles on past the deadline",
    steps: [reply("HTTP/1.1 200 OK", ["Content-Length: 1000000"], "x"), { trickle: "x", everyMs: 50 }],
    expect: { cut: "GW_UPSTREAM_TIMEOUT" },
    deadlineMs: 800,
  },
  {
    name: "chunked body that never ends",
    steps: [reply("HTTP/1.1 200 OK", ["Transfer-Encoding: chunked"], "1\r\nx\r\n"), { trickle: "1\r\nx\r\n", everyMs: 50 }],
    expect: { cut: "GW_UPSTREAM_TIMEOUT" },
    deadlineMs: 800,
  },
  // Interim responses (RFC 9110 §15.2).
  {
    name: "a flood of 100, 102 and 103 before the final answer: relayed",
    steps: [
      ...Array.from(
        { length: 300 },
        (_, i) =>
          [
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 102 Processing\r\n\r\n",
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
          ][i % 3] as string,
      ),
      reply("HTTP/1.1 200 OK"),
    ],
    expect: { relayed: { status: 200, statusMessage: "OK", body: "ok" } },
  },
  {
    name: "interim responses that never end",
    steps: [{ trickle: "HTTP/1.1 102 Processing\r\n\r\n", everyMs: 50 }],
    expect: { error: "GW_UPSTREAM_TIMEOUT" },
    deadlineMs: 800,
  },
  // Not HTTP/1.x at all.
  { name: "garbage bytes", steps: [Buffer.from([0x00, 0x01, 0xfe, 0x47, 0x0d, 0x0a, 0x0d, 0x0a])], expect: bad("HPE_INVALID_CONSTANT") },
  { name: "a TLS ClientHello", steps: [TLS_HELLO], expect: bad("HPE_INVALID_CONSTANT") },
  { name: "the HTTP/2 connection preface", steps: ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"], expect: bad() },
  {
    name: "an HTTP/0.9 answer (a body, no head), then close",
    steps: ["hello world\n", { close: true }],
    expect: bad("HPE_INVALID_CONSTANT"),
  },
  // The connection itself.
  { name: "silence until the deadline", steps: [{ silence: true }], expect: { error: "GW_UPSTREAM_TIMEOUT" }, deadlineMs: 800 },
  { name: "close without a byte", steps: [{ close: true }], expect: { error: "GW_UPSTREAM_UNREACHABLE" } },
  { name: "reset mid-head", steps: ["HTTP/1.1 200 OK\r\nContent-Le", { reset: true }], expect: { error: "GW_UPSTREAM_UNREACHABLE" } },
  {
    name: "reset mid-body",
    steps: [reply("HTTP/1.1 200 OK", ["Content-Length: 100"], "abc"), { reset: true }],
    expect: { cut: "GW_UPSTREAM_UNREACHABLE", orError: true },
  },
  // Odd but survivable.
  {
    name: "an answer before the request body was read",
    steps: [reply("HTTP/1.1 200 OK")],
    postBody: 1024,
    expect: { relayed: { status: 200, statusMessage: "OK", body: "ok" } },
  },
  {
    name: "204 with a body: the body is not relayed",
    steps: [reply("HTTP/1.1 204 No Content", ["Content-Length: 5"], "hello")],
    expect: { relayed: { status: 204, body: "" } },
  },
  {
    name: "304 with a body: the body is not relayed",
    steps: [reply("HTTP/1.1 304 Not Modified", ["Content-Length: 5"], "hello")],
    expect: { relayed: { status: 304, body: "" } },
  },
];

/**
 * The legacy devices the hostile-reply tests register: a raw device answering `/…/{n}` with HOSTILE_REPLIES[n]
 * (a bare close for any other path), and a well-behaved one echoing each request's body; both stopped by
 * `teardown`.
 */
export async function startHostileAndGoodDevices(teardown: Teardown): Promise<{ raw: RawDevice; good: DeviceServer }> {
  const raw = teardown.stopLater(
    "raw device",
    await startRawDevice((path) => HOSTILE_REPLIES[Number(path.split("/")[2])]?.steps ?? [{ close: true }]),
  );
  const good = teardown.stopLater(
    "good device",
    await startDeviceServer((req, res) => {
      res.setHeader("Content-Type", "application/octet-stream");
      req.pipe(res);
    }),
  );
  return { raw, good };
}
