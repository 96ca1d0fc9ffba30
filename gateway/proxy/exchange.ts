import type { ClientRequest, IncomingMessage, ServerResponse } from "node:http";
import { type ErrorCode, GatewayError } from "../errors.js";
import type { TraceSpan } from "../../lib/tracing/tracing.js";
import { streamedHead, writeAnswerHead } from "../messages/device-messages.js";
import type { Framing } from "./headers.js";
import { checkResponseHead } from "../../lib/http/response-head.js";
import { whenClosed } from "../../lib/http/response-end.js";
import type { RosterMember } from "../../lib/roster.js";

/** One request through the pass-through: where it goes, its deadline and request id, and who watches the answer. */
export interface PassThroughTarget {
  /** The device's base URL from the registry (`http://10.0.0.17:8080`, maybe with a path prefix); never from the request. */
  httpTarget: string;
  /** Path and query the device must see, verbatim (`/TEMPERATURE?x=1`). */
  resource: string;
  /** Deadline for the device's response head, from the call (the request's deadline). */
  timeoutMs: number;
  /** The gateway's request id: the device gets it as X-Request-Id, and so does the client. */
  requestId: string;
  /** Sees the device's response (status, headers, body as a stream) while it is written to the client. */
  observe?: (response: IncomingMessage) => void;
  /** The request's span, when the instance traces: the pass-through's CLIENT span is its child. */
  trace?: TraceSpan | undefined;
}

/** The call's deadline, request id and observer (PassThroughTarget), with the client's response and the body's framing. */
export interface ExchangeCall extends Pick<PassThroughTarget, "timeoutMs" | "requestId" | "observe"> {
  res: ServerResponse;
  /** How the body goes to the device; re-applied after http-proxy-3's passes (see pass-through.ts). */
  framing: Framing;
}

/** What every exchange of one pass-through reports to it (one object for them all). */
export interface ExchangeReports {
  countFailure(code: ErrorCode): void;
  /** A device response refused as not valid HTTP/1.1: a head check's reason, or node's parser error code. */
  countBadReply(reason: string): void;
  /** Called once per exchange, when it is over whichever way. */
  done(exchange: Exchange): void;
}

/** How one exchange settles its forward() call. */
export interface ExchangeHooks {
  resolve(): void;
  reject(err: GatewayError): void;
  /**
   * The request failed on a reused connection before any response head: true when it was sent again (the
   * caller knows whether its method and body allow that, and how many retries are left).
   */
  retry(): boolean;
}

/**
 * One forwarded request, from forward() to the last byte of the response. Settles forward()'s promise once:
 * - resolves when the device's response was written whole, when the client went away, or when a failure came
 *   after the device's response head was committed: the client response is destroyed then (the client sees a
 *   truncated response; a status line already sent cannot be taken back, and there is no honest way to add
 *   an error to it);
 * - rejects with a catalogue error for a failure before anything was committed, for the caller to write.
 * Every failure is counted by its code; a client that went away is not a failure of the gateway.
 *
 * Timing: the device has `timeoutMs` from the call to answer with a response head (the request's deadline,
 * as on the XMPP path). After the head, `timeoutMs` without a byte from the device is a stall, unless the
 * client is the one not reading (then the device is waiting on the client, not the other way round).
 */
export class Exchange implements RosterMember {
  rosterIndex = -1;
  /**
   * The current attempt's request to the device, from the moment node's agent is handed it (attempt()):
   * destroying it cancels the attempt wherever it is, queued in the agent for a connection, sending, or
   * receiving. An AbortSignal per attempt would do the same at the cost of an AbortController, its
   * EventTarget, listener and end-of-stream watcher per request (about a sixth of the pass-through's CPU).
   */
  private current: ClientRequest | undefined;
  private readonly deadline: number;
  private settled = false;
  private readonly timer: NodeJS.Timeout;
  private bodyTimer: NodeJS.Timeout | undefined;
  private proxyRes: IncomingMessage | undefined;
  /** Whether the client's response has a `drain` listener (added the first time the client reads slower than the device sends). */
  private drainWatched = false;

  constructor(
    readonly call: ExchangeCall,
    private readonly reports: ExchangeReports,
    private readonly hooks: ExchangeHooks,
  ) {
    this.deadline = Date.now() + call.timeoutMs;
    this.timer = setTimeout(() => this.onTimer(), call.timeoutMs);
    whenClosed(call.res, () => {
      if (!call.res.writableFinished) this.clientGone();
    });
  }

  /**
   * An attempt's request, as node's agent is handed it (before it has a connection). The previous attempt,
   * if any, is over: its request failed and its `close` is no longer this exchange's end. The request's
   * events come straight here, not through http-proxy-3's `proxyReq` and `proxyRes` events, which would
   * have to find the exchange again from the response (and `proxyReq` is not emitted for a request with
   * Expect).
   */
  attempt(proxyReq: ClientRequest): void {
    this.current = proxyReq;
    proxyReq.on("response", (proxyRes: IncomingMessage) => this.respond(proxyRes));
    this.watch(proxyReq);
  }

  /** The device's response head arrived (selfHandleResponse: the library leaves the response to us). */
  private respond(proxyRes: IncomingMessage): void {
    if (this.settled) {
      proxyRes.destroy();
      return;
    }
    const { res, requestId } = this.call;
    this.proxyRes = proxyRes;
    // Checked before `res` is touched: nothing of a head that cannot be relayed may end up on the client's
    // response, where the error written next would carry it (lib/http/response-head.ts).
    const verdict = checkResponseHead(proxyRes);
    if (!verdict.ok) {
      this.badReply(verdict.reason, verdict.detail);
      return;
    }
    try {
      writeAnswerHead(res, streamedHead(proxyRes), requestId);
    } catch (err) {
      // Nothing went out (the check above should have made this unreachable).
      this.badReply("relay", "the device's response head cannot be relayed", err);
      return;
    }
    this.call.observe?.(proxyRes);
    // The body has as long again as the head had: a device that trickles forever is cut off (the stall timer
    // alone never fires while bytes keep coming).
    this.bodyTimer = setTimeout(() => this.onBodyDeadline(), this.call.timeoutMs);
    this.timer.refresh();
    // The body is relayed by listeners of our own: not stream.pipeline(), which costs an AbortController and
    // a DOMException per response, nor pipe(), which adds seven listeners and their closures, four of them
    // on the client's response: on a request held long, those point from the old generation at young
    // objects until the next full collection (docs/benchmark.md, "What a request leaves behind"). The
    // client going away is the constructor's `close` listener; a device breaking off is an error, or a
    // close before the end (node's IncomingMessage emits no error without a listener of its own).
    const brokeOff = (err?: Error) => this.fail("GW_UPSTREAM_UNREACHABLE", err, "device HTTP server broke off its response");
    // `on`, not `once`, for events that come once: `once` costs a wrapper and a bound function per listener.
    proxyRes.on("error", brokeOff);
    proxyRes.on("close", () => {
      if (!proxyRes.complete) brokeOff();
    });
    res.on("finish", () => this.succeed());
    proxyRes.on("data", (chunk: Buffer) => this.relay(proxyRes, chunk));
    proxyRes.on("end", () => {
      if (!this.settled) res.end();
    });
  }

  /**
   * One chunk of the device's body to the client. A client that reads slower than the device sends holds
   * the device back (its response is paused until the client's side drains), as pipe() would.
   */
  private relay(proxyRes: IncomingMessage, chunk: Buffer): void {
    this.timer.refresh();
    const { res } = this.call;
    if (this.settled || res.write(chunk)) return;
    proxyRes.pause();
    if (this.drainWatched) return;
    this.drainWatched = true;
    res.on("drain", () => {
      if (!this.settled) proxyRes.resume();
    });
  }

  /**
   * The request to the device. A 101 (Switching Protocols) only answers a request with Upgrade (RFC 9110
   * §15.2.2), which the gateway never sends: without an `upgrade` listener node destroys the socket and emits
   * neither a response nor an error, and the client would wait for the deadline. And whatever else ends the
   * request without a response is caught here too.
   */
  private watch(proxyReq: ClientRequest): void {
    proxyReq.on("upgrade", (_res: IncomingMessage, socket: { destroy(): void }) => {
      socket.destroy();
      this.badReply("interim-status", "device HTTP server switched protocols (101) unasked");
    });
    proxyReq.on("close", () => {
      // A retried attempt's close is not the end: the next attempt is under way.
      if (this.proxyRes === undefined && proxyReq === this.current)
        this.fail("GW_UPSTREAM_UNREACHABLE", undefined, "device HTTP server closed the connection without a response");
    });
  }

  /** An error from http-proxy-3's request to the device (refused, reset, DNS failure, bad response...). */
  upstreamError(err: Error): void {
    if (this.settled) return;
    // The device's answer arrived whole: what its connection does next (bytes after a 204's head, a reset)
    // is no longer this exchange's business; node discards that connection.
    if (this.proxyRes?.complete) return;
    if (this.call.res.destroyed) {
      this.clientGone();
      return;
    }
    const code = (err as NodeJS.ErrnoException).code;
    // node's parser (llhttp) refused the device's bytes: HPE_INVALID_STATUS, HPE_HEADER_OVERFLOW...
    if (code?.startsWith("HPE_")) {
      this.badReply(PARSER_CODES.has(code) ? code : "HPE_OTHER", `device HTTP server sent an invalid response (${code})`, err);
      return;
    }
    // A kept-alive connection the device closed (its idle timeout, maybe shorter than the one it announced
    // or none announced) just as it was reused: nothing was answered, and the request may be sent again on
    // another connection if its method and body allow (RFC 9112 §9.3.1), within the deadline.
    if (this.proxyRes === undefined && this.current?.reusedSocket && Date.now() < this.deadline && this.hooks.retry()) return;
    this.fail("GW_UPSTREAM_UNREACHABLE", err, `device HTTP server unreachable (${code ?? err.message})`);
  }

  private badReply(reason: string, message: string, cause?: unknown): void {
    if (this.settled) return;
    this.reports.countBadReply(reason);
    this.fail("GW_BAD_UPSTREAM_REPLY", cause, message);
  }

  tooLarge(maxBytes: number): void {
    this.fail("GW_PAYLOAD_TOO_LARGE", undefined, `request body is over the limit of ${maxBytes} bytes`);
  }

  fail(code: ErrorCode, cause?: unknown, message?: string): void {
    if (this.settled) return;
    this.settle();
    this.reports.countFailure(code);
    this.current?.destroy();
    this.proxyRes?.destroy();
    const { res } = this.call;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      this.hooks.resolve();
      return;
    }
    this.hooks.reject(new GatewayError(code, { message, cause }));
  }

  private onTimer(): void {
    if (this.proxyRes === undefined) {
      this.fail("GW_UPSTREAM_TIMEOUT", undefined, `device HTTP server did not answer within ${this.call.timeoutMs} ms`);
      return;
    }
    if (this.call.res.writableNeedDrain) {
      this.timer.refresh();
      return;
    }
    this.fail("GW_UPSTREAM_TIMEOUT", undefined, `device HTTP server sent nothing for ${this.call.timeoutMs} ms mid-response`);
  }

  private onBodyDeadline(): void {
    if (this.settled) return;
    // A client that does not read holds the device back, not the other way round (as for the stall timer).
    if (this.call.res.writableNeedDrain) {
      this.bodyTimer?.refresh();
      return;
    }
    this.fail(
      "GW_UPSTREAM_TIMEOUT",
      undefined,
      `device HTTP server did not finish its response within ${this.call.timeoutMs} ms of its head`,
    );
  }

  private succeed(): void {
    if (this.settled) return;
    this.settle();
    this.hooks.resolve();
  }

  private clientGone(): void {
    if (this.settled) return;
    this.settle();
    this.current?.destroy();
    this.proxyRes?.destroy();
    this.hooks.resolve();
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
    clearTimeout(this.bodyTimer);
    this.reports.done(this);
  }
}

/**
 * llhttp's error codes a device's bytes can cause (llhttp's `llhttp_errno`), each a bounded label value of
 * gateway_proxy_bad_replies_total; any other is counted as HPE_OTHER.
 */
const PARSER_CODES = new Set([
  "HPE_INVALID_CONSTANT",
  "HPE_INVALID_VERSION",
  "HPE_INVALID_STATUS",
  "HPE_INVALID_HEADER_TOKEN",
  "HPE_INVALID_CONTENT_LENGTH",
  "HPE_UNEXPECTED_CONTENT_LENGTH",
  "HPE_INVALID_TRANSFER_ENCODING",
  "HPE_INVALID_CHUNK_SIZE",
  "HPE_HEADER_OVERFLOW",
  "HPE_LF_EXPECTED",
  "HPE_CR_EXPECTED",
  "HPE_STRICT",
  "HPE_INVALID_EOF_STATE",
  "HPE_CLOSED_CONNECTION",
  "HPE_CHUNK_EXTENSIONS_OVERFLOW",
  "HPE_PAUSED_UPGRADE",
]);

/** Every reason gateway_proxy_bad_replies_total may carry: its series exist from the start, at 0. */
export const BAD_REPLY_REASONS: readonly string[] = [...PARSER_CODES, "HPE_OTHER", "relay"];
