import type { IncomingMessage, ServerResponse } from "node:http";
import { type ErrorCode, GatewayError } from "../errors.js";
import { clientResponseHeaders, type Framing } from "./headers.js";

export interface ExchangeCall {
  res: ServerResponse;
  timeoutMs: number;
  requestId: string;
  /** How the body goes to the device; re-applied after http-proxy-3's passes (see pass-through.ts). */
  framing: Framing;
  /** Sees the device's response as it streams to the client (shadow mode compares it). */
  observe?: (response: IncomingMessage) => void;
}

export interface ExchangeHooks {
  countFailure(code: ErrorCode): void;
  /** Called once, when the exchange is over whichever way. */
  done(): void;
  resolve(): void;
  reject(err: GatewayError): void;
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
export class Exchange {
  /** Cancels the upstream request wherever it is: queued in the agent, sending, or receiving. */
  readonly upstream = new AbortController();
  private settled = false;
  private readonly timer: NodeJS.Timeout;
  private proxyRes: IncomingMessage | undefined;

  constructor(
    readonly call: ExchangeCall,
    private readonly hooks: ExchangeHooks,
  ) {
    this.timer = setTimeout(() => this.onTimer(), call.timeoutMs);
    call.res.once("close", () => {
      if (!call.res.writableFinished) this.clientGone();
    });
  }

  /** The device's response head arrived (http-proxy-3's `proxyRes`, with selfHandleResponse). */
  respond(proxyRes: IncomingMessage): void {
    if (this.settled) {
      proxyRes.destroy();
      return;
    }
    const { res, requestId } = this.call;
    this.proxyRes = proxyRes;
    this.call.observe?.(proxyRes);
    this.timer.refresh();
    const headers = clientResponseHeaders(proxyRes);
    try {
      for (const [name, value] of headers) res.appendHeader(name, value);
      res.setHeader("X-Request-Id", requestId);
      // The device's status and reason phrase, as it sent them (an empty reason stays empty).
      res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage ?? "");
    } catch (err) {
      // Nothing went out: take the device's fields off again, so the caller's error does not carry them.
      for (const [name] of headers) res.removeHeader(name);
      this.fail("GW_UPSTREAM_UNREACHABLE", err, "the device's response head cannot be relayed");
      return;
    }
    // pipe() and three listeners rather than stream.pipeline(), which costs an AbortController and a
    // DOMException per response (a few percent of the gateway's CPU per request). The client going away is
    // the constructor's `close` listener; a device breaking off is an error, or a close before the end
    // (node's IncomingMessage emits no error without a listener of its own).
    const brokeOff = (err?: Error) => this.fail("GW_UPSTREAM_UNREACHABLE", err, "device HTTP server broke off its response");
    proxyRes.on("error", brokeOff);
    proxyRes.once("close", () => {
      if (!proxyRes.complete) brokeOff();
    });
    res.once("finish", () => this.succeed());
    proxyRes.on("data", () => this.timer.refresh());
    proxyRes.pipe(res);
  }

  /** An error from http-proxy-3's request to the device (refused, reset, DNS failure, bad response...). */
  upstreamError(err: Error): void {
    if (this.settled) return;
    if (this.call.res.destroyed) {
      this.clientGone();
      return;
    }
    const code = (err as NodeJS.ErrnoException).code;
    this.fail("GW_UPSTREAM_UNREACHABLE", err, `device HTTP server unreachable (${code ?? err.message})`);
  }

  tooLarge(maxBytes: number): void {
    this.fail("GW_PAYLOAD_TOO_LARGE", undefined, `request body is over the limit of ${maxBytes} bytes`);
  }

  fail(code: ErrorCode, cause?: unknown, message?: string): void {
    if (this.settled) return;
    this.settle();
    this.hooks.countFailure(code);
    this.upstream.abort();
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

  private succeed(): void {
    if (this.settled) return;
    this.settle();
    this.hooks.resolve();
  }

  private clientGone(): void {
    if (this.settled) return;
    this.settle();
    this.upstream.abort();
    this.proxyRes?.destroy();
    this.hooks.resolve();
  }

  private settle(): void {
    this.settled = true;
    clearTimeout(this.timer);
    this.hooks.done();
  }
}
