import http, { type ClientRequest, type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
// http-proxy-3 1.23.x: the maintained TypeScript rewrite of http-proxy 1.18.1 (unmaintained), same API.
// Its 2.x needs Node 22; the gateway runs on Node 20. This file is the one place that imports it.
import { ProxyServer } from "http-proxy-3";
import { isHttpMethod } from "../../lib/xep0332/constants.js";
import { CATALOGUE, GatewayError, type ErrorCode } from "../errors.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Metrics } from "../metrics/metrics.js";
import { GATEWAY_SETTINGS } from "../settings.js";
import { BodyLimit } from "./body-limit.js";
import { BAD_REPLY_REASONS, Exchange, type ExchangeReports, type PassThroughTarget } from "./exchange.js";
import { BAD_HEAD_REASONS } from "../../lib/http/response-head.js";
import { IDEMPOTENT, MAX_STALE_RETRIES } from "../../lib/http/stale-retry.js";
import { applyFraming, asksToSwitchProtocols, deviceRequestHeaders, requestFraming } from "./headers.js";
import { DeviceOrigins, devicePath, type DeviceOrigin } from "./device-origin.js";
import { ATTR, pathOnly } from "../../lib/tracing/attributes.js";
import { setTraceFields } from "../../lib/tracing/trace-context.js";
import type { TraceSpan } from "../../lib/tracing/tracing.js";
import { Roster } from "../../lib/roster.js";

export interface PassThroughOptions {
  /** GATEWAY_MAX_BODY_BYTES: a larger request body is 413 GW_PAYLOAD_TOO_LARGE and never reaches the device whole. */
  maxBodyBytes: number;
  /**
   * Per device origin: connections open at once, and idle ones kept alive for reuse (default: the
   * default of GATEWAY_DEVICE_MAX_IN_FLIGHT, 16). A request beyond it waits for a connection, within its deadline.
   */
  keepAliveMaxSockets?: number;
}

export interface ConnectionCounts {
  /** Connections carrying a request now. */
  active: number;
  /** Keep-alive connections waiting for the next request. */
  idle: number;
  /** Requests waiting for a connection (at keepAliveMaxSockets for their origin). */
  waiting: number;
}

/** Without keepAliveMaxSockets: as many connections per origin as a device has requests in flight by default. */
const DEFAULT_MAX_SOCKETS = GATEWAY_SETTINGS.GATEWAY_DEVICE_MAX_IN_FLIGHT.default;
/**
 * An idle connection is closed after this long, and sooner when the device announces a shorter
 * `Keep-Alive: timeout` (node's agent only applies that hint when it has a timeout of its own): below the
 * 5 s that many servers (node's included) keep one, so the gateway does not send on a connection the
 * device is closing.
 */
const IDLE_SOCKET_TIMEOUT_MS = 4000;

/**
 * The HTTP pass-through (README, "What it does"): a client request streamed to a device's legacy HTTP server,
 * and its response streamed back, for devices not (yet) on XMPP. The one facade over http-proxy-3.
 *
 * What the library does and what is filled in here (and in headers.ts / exchange.ts):
 * - target, agent: per call, from the registry and this instance's keep-alive agents. The request's own
 *   Host or absolute URI never picks the destination (no SSRF): the library connects to `target` only.
 * - path: the library re-parses req.url with WHATWG URL (resolving `..` and `%2e%2e`, percent-encoding `'`,
 *   `{`...) unless `toProxy`; with toProxy and prependPath off, the path we give goes out verbatim, except that
 *   its urlJoin drops a bare trailing `?` (an empty query).
 * - request headers: the library copies `req.headers` (node's merged view: duplicates folded or dropped,
 *   names lower-cased) and strips only `Trailer`. We hand it our own view (headers.ts: hop-by-hop stripped
 *   per RFC 9110 §7.6.1, repeats kept, X-Request-Id replaced, X-Forwarded-For/-Port/-Proto/-Host appended
 *   to), swapped into req for the synchronous part of web() and swapped back.
 * - changeOrigin (Host = the device's host:port): the library's, as it is. Not its xfwd: headers.ts appends
 *   the X-Forwarded-* fields in the pass that builds the header object (one pass over the fields fewer).
 * - body framing: the library's `deleteLength` pass turns a DELETE/OPTIONS body without Content-Length into
 *   `Content-Length: 0` and drops Transfer-Encoding, and would then stream the body anyway: the device would
 *   read it as the next request on the connection (request smuggling). A pass of ours, just before the
 *   library's `stream`, puts our framing back (RFC 9112 §6).
 * - response: selfHandleResponse. The library's own response passes copy `proxyRes.headers` (node's merged
 *   view), keep Connection, Keep-Alive, Proxy-* and Upgrade and set a Connection of their own; ours writes the
 *   device's status, reason phrase and raw header list minus hop-by-hop fields (exchange.ts).
 * - deadlines: not the library's `proxyTimeout`, an idle timer on the socket ending in a plain destroy() that
 *   surfaces as "socket hang up", indistinguishable from a reset (no 504 possible), and blind to time spent
 *   waiting for a connection. Exchange has a deadline of its own and cancels by destroying the request to
 *   the device, which it holds from the moment the agent is handed it (`announcing`); `timeout` is not used
 *   either (it arms a timer on the *client's* socket).
 * - errors: per call through web()'s callback, mapped to the catalogue (exchange.ts).
 * - bodies stream both ways: `buffer` is the client request through a byte counter (body-limit.ts), or the
 *   body a caller already read.
 * - the library's fetch code path (taken with its `fetch`/`fetchOptions` options, never set here, or with
 *   FORCE_FETCH_PATH=true in the environment) bypasses the agent and most of the above: the constructor
 *   refuses to run with that variable set.
 */
export class HttpPassThrough implements Lifecycle {
  private readonly proxy: ProxyServer;
  private readonly agents: { http: http.Agent; https: https.Agent };
  /** The exchanges in flight (a Roster, not a Map keyed by the response: lib/roster.ts says why). */
  private readonly exchanges = new Roster<Exchange>();
  private readonly origins = new DeviceOrigins();
  private readonly reports: ExchangeReports = {
    countFailure: (code) => this.count(code),
    countBadReply: (reason) => this.deps.metrics.proxyBadReplies.inc({ reason }),
    done: (exchange) => this.exchanges.remove(exchange),
  };
  /**
   * The exchange whose attempt is being handed to the library now: web() runs its passes, builds the request
   * to the device and hands it to the agent synchronously, so whatever the library calls back meanwhile is
   * this exchange's. Its request's later events go to the exchange directly (Exchange.attempt).
   */
  private attempting: Exchange | undefined;
  private stopped = false;

  constructor(
    private readonly opts: PassThroughOptions,
    private readonly deps: { metrics: Pick<Metrics, "proxyErrors" | "proxyBadReplies" | "proxyRetries"> },
  ) {
    if (process.env.FORCE_FETCH_PATH === "true") {
      throw new Error("FORCE_FETCH_PATH=true switches http-proxy-3 to its fetch path, which the HTTP pass-through does not support");
    }
    const maxSockets = opts.keepAliveMaxSockets ?? DEFAULT_MAX_SOCKETS;
    const agentOptions = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, timeout: IDLE_SOCKET_TIMEOUT_MS };
    const handedTo = (proxyReq: ClientRequest) => this.attempting?.attempt(proxyReq);
    this.agents = {
      http: announcing(new http.Agent(agentOptions), handedTo),
      https: announcing(new https.Agent(agentOptions), handedTo),
    };
    this.proxy = new ProxyServer({
      changeOrigin: true,
      xfwd: false,
      toProxy: true,
      prependPath: false,
      selfHandleResponse: true,
    });
    this.proxy.before("web", "stream", (req) => {
      if (this.attempting) applyFraming(req.headers, this.attempting.call.framing);
    });
    // Errors come through web()'s callback. The library emits this event only without one (or, synchronously,
    // for options it cannot use): a listener keeps that from throwing.
    this.proxy.on("error", (err) => this.attempting?.upstreamError(err));
    // The codes forward() can end with (CATALOGUE's `passThrough`): their series exist from the start, at 0.
    for (const [code, entry] of Object.entries(CATALOGUE)) if (entry.passThrough) deps.metrics.proxyErrors.inc({ code }, 0);
    for (const reason of [...BAD_HEAD_REASONS, ...BAD_REPLY_REASONS]) deps.metrics.proxyBadReplies.inc({ reason }, 0);
  }

  async start(): Promise<void> {}

  /** Cancels what is still in flight (503 GW_SHUTTING_DOWN, or a truncated response) and closes every connection. */
  stop(): Promise<void> {
    this.stopped = true;
    for (const exchange of this.exchanges.snapshot()) exchange.fail("GW_SHUTTING_DOWN");
    this.agents.http.destroy();
    this.agents.https.destroy();
    return Promise.resolve();
  }

  /**
   * Forwards `req` to `target` and streams the device's response into `res`. Resolves once the response is
   * written whole (or the client went away, or it broke off after its head: `res` is destroyed then).
   * Rejects with a catalogue error only while nothing was written to `res`, for the caller to answer:
   * GW_UPSTREAM_UNREACHABLE (refused, reset, DNS), GW_UPSTREAM_TIMEOUT, GW_BAD_UPSTREAM_REPLY (a response
   * node's parser or lib/http/response-head.ts refuses), GW_PAYLOAD_TOO_LARGE (declared, before
   * connecting; or streamed, the upstream request then cancelled), GW_METHOD_NOT_ALLOWED (methods XEP-0332
   * does not carry, protocol upgrades), GW_SHUTTING_DOWN. `bufferedBody`, when given, is sent instead of
   * reading `req` (for callers that read it already).
   */
  forward(req: IncomingMessage, res: ServerResponse, target: PassThroughTarget, bufferedBody?: Buffer): Promise<void> {
    const base = this.origins.of(target.httpTarget);
    const refusal = this.refusal(req, base, bufferedBody);
    if (refusal || !base) {
      const err = refusal ?? new GatewayError("GW_UPSTREAM_UNREACHABLE");
      this.count(err.code);
      return Promise.reject(err);
    }
    const framing = requestFraming(req, bufferedBody);
    const path = devicePath(base, target.resource);
    const span = target.trace ? passThroughSpan(target.trace, req.method ?? "", path, base) : undefined;
    // A request may be sent again after a stale kept-alive connection (see Exchange.upstreamError) only if
    // its method is idempotent (RFC 9110 §9.2.2) and its body can be sent again: none, or one already read.
    // A streamed client body is gone once piped.
    const replayable = IDEMPOTENT.has(req.method ?? "") && (bufferedBody !== undefined || framing === undefined);
    let retriesLeft = replayable ? MAX_STALE_RETRIES : 0;
    return new Promise<void>((resolve, reject) => {
      const retry = (): boolean => {
        if (retriesLeft === 0) return false;
        retriesLeft -= 1;
        this.deps.metrics.proxyRetries.inc();
        send(undefined);
        return true;
      };
      const exchange = new Exchange(
        { res, timeoutMs: target.timeoutMs, requestId: target.requestId, framing, ...(target.observe ? { observe: target.observe } : {}) },
        this.reports,
        {
          resolve: span ? () => endPassThroughSpan(span, res, resolve) : resolve,
          reject: span ? (err) => failPassThroughSpan(span, err, reject) : reject,
          retry,
        },
      );
      this.exchanges.add(exchange);
      const send = (streamed: BodyLimit | undefined): void => {
        const body = bufferedBody !== undefined ? Readable.from(bufferedBody.length > 0 ? [bufferedBody] : []) : streamed;
        const headers = deviceRequestHeaders(req, target.requestId, framing);
        // Traced: the device's parent is the pass-through's span, never the client's own traceparent (replaced).
        if (span) setTraceFields(headers, span.fields);
        this.attempt(req, res, exchange, { base, path, headers, body });
      };
      // A request without framing has no body (RFC 9112 §6.3): nothing to count, and the library pipes the
      // (empty) request itself, which ends the upstream request at once.
      send(bufferedBody === undefined && framing ? this.limited(req, exchange) : undefined);
    });
  }

  /**
   * One attempt at the device: hands the request to the library. Each attempt gets fresh headers (the
   * library's passes append to them), and its request to the device is the exchange's to cancel from the
   * moment the agent is handed it (http.request does that synchronously, before any connection); a retry
   * adds the library's per-call listeners on `req` and `res` again, a number MAX_STALE_RETRIES bounds.
   */
  private attempt(
    req: IncomingMessage,
    res: ServerResponse,
    exchange: Exchange,
    attempt: { base: DeviceOrigin; path: string; headers: IncomingMessage["headers"]; body: Readable | undefined },
  ): void {
    const { base, path, headers, body } = attempt;
    const own = { url: req.url, headers: req.headers };
    req.url = path;
    req.headers = headers;
    this.attempting = exchange;
    try {
      this.proxy.web(
        req,
        res,
        {
          target: base.origin,
          agent: base.https ? this.agents.https : this.agents.http,
          ...(body ? { buffer: body } : {}),
        },
        (err) => exchange.upstreamError(err),
      );
    } catch (err) {
      if (body instanceof BodyLimit) req.unpipe().resume();
      exchange.fail("GW_INTERNAL", err);
    } finally {
      this.attempting = undefined;
      req.url = own.url;
      req.headers = own.headers;
    }
  }

  /** The agents' connections, all origins together (for tests and diagnostics). */
  connections(): ConnectionCounts {
    const counts: ConnectionCounts = { active: 0, idle: 0, waiting: 0 };
    for (const agent of [this.agents.http, this.agents.https]) {
      counts.active += total(agent.sockets);
      counts.idle += total(agent.freeSockets);
      counts.waiting += total(agent.requests);
    }
    return counts;
  }

  /** Exchanges not settled yet (each is one forward() whose promise is pending). */
  inFlight(): number {
    return this.exchanges.size;
  }

  /** Why the request is answered without reaching the device, if it is. */
  private refusal(req: IncomingMessage, base: DeviceOrigin | undefined, bufferedBody: Buffer | undefined): GatewayError | undefined {
    if (this.stopped) return new GatewayError("GW_SHUTTING_DOWN");
    const method = req.method ?? "";
    if (!isHttpMethod(method)) {
      return new GatewayError("GW_METHOD_NOT_ALLOWED", { message: `method ${method} is not carried to devices` });
    }
    // Upgrades (WebSocket...) are not proxied: devices are plain HTTP/1.1 request/response servers, the XMPP
    // path cannot carry them either (so a device could not keep them after its migration), and a tunnel would
    // escape the deadline and in-flight limit of the request that opened it.
    if (asksToSwitchProtocols(req)) {
      return new GatewayError("GW_METHOD_NOT_ALLOWED", { message: "protocol upgrades (WebSocket) are not carried to devices" });
    }
    const size = bufferedBody?.length ?? Number(req.headers["content-length"] ?? 0);
    if (size > this.opts.maxBodyBytes) {
      return new GatewayError("GW_PAYLOAD_TOO_LARGE", { message: `request body is over the limit of ${this.opts.maxBodyBytes} bytes` });
    }
    if (bufferedBody === undefined && req.readableEnded && requestFraming(req, undefined) !== undefined) {
      return new GatewayError("GW_INTERNAL", { message: "the request body was read before forward() and not passed as bufferedBody" });
    }
    if (!base) return new GatewayError("GW_UPSTREAM_UNREACHABLE", { message: "the device's httpTarget is not an http(s) URL" });
    return undefined;
  }

  /** The client's body, counted on its way: over the limit, the upstream request is cancelled (413). */
  private limited(req: IncomingMessage, exchange: Exchange): BodyLimit {
    const limit = new BodyLimit(this.opts.maxBodyBytes, () => {
      req.unpipe(limit);
      // The rest is read and dropped, so the client can read the 413 (which the caller sends with
      // Connection: close; the server then lingers, reading, see http/linger.ts) instead of being reset.
      req.resume();
      exchange.tooLarge(this.opts.maxBodyBytes);
    });
    req.pipe(limit);
    return limit;
  }

  private count(code: ErrorCode): void {
    this.deps.metrics.proxyErrors.inc({ code });
  }
}

/** The CLIENT span of one pass-through call, a child of the request's (README, "Tracing"). */
function passThroughSpan(parent: TraceSpan, method: string, path: string, base: DeviceOrigin): TraceSpan {
  return parent.child("http pass-through", "client", {
    [ATTR.method]: method,
    [ATTR.path]: pathOnly(path),
    [ATTR.serverAddress]: base.origin.hostname,
    [ATTR.serverPort]: Number(base.origin.port || (base.https ? 443 : 80)),
    [ATTR.transport]: "http",
  });
}

/** The device's answer went to the client (its status is the client's, in error from 400 for a client span), or the client left. */
function endPassThroughSpan(span: TraceSpan, res: ServerResponse, resolve: () => void): void {
  if (res.headersSent) span.answered(res.statusCode, 400);
  span.end();
  resolve();
}

function failPassThroughSpan(span: TraceSpan, err: GatewayError, reject: (err: GatewayError) => void): void {
  span.fail(err.code);
  span.end();
  reject(err);
}

/**
 * `agent`, telling `handedTo` of each request given to it, as http.request does in ClientRequest's
 * constructor: the request is known from then on, while it still waits in the agent's queue for a
 * connection, where no `socket` (and no `proxyReq` event) exists yet. `addRequest` is what makes an object
 * an agent to node (http.request refuses one without it), so node calls it on every request.
 *
 * The agent is handed only the options that say something about the connection (connectionOptions).
 */
function announcing<A extends http.Agent>(agent: A, handedTo: (req: ClientRequest) => void): A {
  const withAdd = agent as A & { addRequest(req: ClientRequest, options: Record<string, unknown>): void };
  const addRequest = withAdd.addRequest.bind(agent);
  withAdd.addRequest = (req, options) => {
    handedTo(req);
    addRequest(req, connectionOptions(options));
  };
  return agent;
}

/**
 * A request's options without those that are unset or are the request's own (its headers, its agent).
 * The agent copies what it is given into a dictionary-mode object (`{ __proto__: null, ...options }`)
 * that its listeners on the new connection keep for the connection's life: the proxy library sets every
 * TLS option it knows, most of them undefined, beside the request's headers object. Measured in a heap
 * snapshot of 10,000 pass-through requests held: that object's property table was 1.6 KB per
 * connection, the largest single item after the sockets themselves (docs/benchmark.md, "Soak"). Unset
 * options read as undefined either way; the request itself keeps its headers.
 */
function connectionOptions(options: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const key in options) {
    const value = options[key];
    if (value !== undefined && key !== "headers" && key !== "agent") kept[key] = value;
  }
  return kept;
}

function total(byOrigin: NodeJS.ReadOnlyDict<readonly unknown[]>): number {
  let n = 0;
  for (const list of Object.values(byOrigin)) n += list?.length ?? 0;
  return n;
}
