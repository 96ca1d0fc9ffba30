import type { Agent as HttpAgent } from "node:http";
import { CodecError } from "../../lib/xep0332/errors.js";
import { decodeChunk, isChunk, isClose } from "../../lib/xep0332/chunks.js";
import {
  decodeRequest,
  encodeResponse,
  type Encoded,
  type HttpRequestMessage,
  type HttpResponseMessage,
} from "../../lib/xep0332/message.js";
import { childElements, el, hasForbiddenXmlChars, type XmlElement } from "../../lib/xep0332/xml.js";
import type { BackoffOptions } from "../../lib/backoff.js";
import { InboundStreams } from "../../lib/xep0332/inbound-streams.js";
import { bareJid } from "../../lib/xmpp/jid.js";
import { deviceAnnouncement, normalizeLegacyAddress } from "../../lib/legacy-address.js";
import { stanzaError } from "../../lib/xmpp/stanza-error.js";
import { callLocal, failure as localFailure } from "./local-http.js";
import { DeviceConnection } from "./xmpp-client.js";
import type { AgentTlsOptions } from "./tls.js";
import type { SrvLookup } from "./servers.js";
import { randomBytes } from "node:crypto";
import { ATTR, pathOnly } from "../../lib/tracing/attributes.js";
import { traceFieldsOf, withTraceFields } from "../../lib/tracing/trace-context.js";
import type { TraceSpan, Tracing } from "../../lib/tracing/tracing.js";

/** One device identity: who it is on XMPP and where its own HTTP server listens. */
export interface AgentIdentity {
  username: string;
  password: string;
  resource: string;
  localUrl: string;
  /**
   * The `host:port` legacy clients used for this device (AGENT_LEGACY_ADDRESS): announced in every presence,
   * so the gateway's forward-proxy mode maps it to this device. Absent: nothing announced.
   */
  legacyAddress?: string;
}

export interface AgentOptions extends AgentIdentity {
  /** AGENT_SERVICE: one server, or a comma-separated list of servers and SRV domains (servers.ts). */
  service: string;
  domain: string;
  /** The gateway's component JID: the only sender whose requests are served, and where presence goes. */
  gatewayJid: string;
  localTimeoutMs: number;
  /** Presence is sent again this often, so the gateway's record of it never expires while we are here. */
  presenceIntervalMs: number;
  maxBodyBytes: number;
  chunkThresholdBytes: number;
  chunkSizeBytes: number;
  saslMechanism?: string;
  /** TLS on the XMPP connection (AGENT_TLS, AGENT_TLS_CA_FILE); absent: see `defaultTlsMode`. */
  tls?: AgentTlsOptions;
  backoff?: BackoffOptions;
  /** An XMPP connection attempt not online within this bound is abandoned and retried. */
  attemptTimeoutMs?: number;
  /** SRV lookups for xmpp-srv:// entries (servers.ts); default node's resolver. */
  srvLookup?: SrvLookup;
}

export interface AgentLog {
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
}

/**
 * Runs next to a legacy device: each XEP-0332 `<req>` from the gateway becomes a call on the device's own
 * HTTP server, and its answer goes back as `<resp>` (chunked above the threshold). Many agents can share
 * one process and one keep-alive HTTP agent (a fleet simulator does).
 */
export class DeviceAgent {
  private readonly connection: DeviceConnection;
  private readonly streams: InboundStreams;
  private readonly localUrl: URL;
  private presenceTimer: NodeJS.Timeout | undefined;
  /** What each presence carries besides itself: the legacy address, when there is one. */
  private readonly announcement: XmlElement[];
  readonly jid: string;

  constructor(
    private readonly opts: AgentOptions,
    private readonly deps: {
      log: AgentLog;
      httpAgent?: HttpAgent;
      /** On when the process traces (README, "Tracing"): each request continues the gateway's trace. */
      tracing?: Tracing;
    },
  ) {
    this.localUrl = new URL(opts.localUrl);
    if (opts.legacyAddress !== undefined) {
      const legacyAddress = normalizeLegacyAddress(opts.legacyAddress);
      if (legacyAddress === undefined)
        throw new Error(`legacyAddress ${JSON.stringify(opts.legacyAddress)} must be host:port, e.g. 10.0.0.17:8080`);
      this.announcement = [deviceAnnouncement(legacyAddress)];
    } else {
      this.announcement = [];
    }
    this.jid = `${opts.username}@${opts.domain}/${opts.resource}`;
    const fields = { device: this.jid };
    this.connection = new DeviceConnection(opts, {
      onEvent: (event, extra) => {
        // Whether the link is encrypted is worth a field on every connection: an operator can check it.
        if (event === "online")
          deps.log.info(
            { event, ...fields, ...extra, server: this.connection.server, tls: this.connection.tlsProtocol ?? "none" },
            "agent online",
          );
        else deps.log.warn({ event, ...fields, ...extra }, `agent ${event}`);
      },
      onOnline: () => this.announce(),
    });
    // Request bodies arrive as chunks from the gateway only; early ones may wait for their IQ.
    this.streams = new InboundStreams({ maxEarlyBytes: opts.maxBodyBytes, maxEarlyAgeMs: opts.localTimeoutMs }, (from) =>
      this.isGateway(from),
    );
    this.connection.onRequest((stanza, payload) => this.serve(stanza, payload));
    this.connection.onStanza((stanza) => this.onStanza(stanza));
  }

  get online(): boolean {
    return this.connection.online;
  }

  /** The TLS version of the XMPP connection (`TLSv1.3`), or undefined while it is not encrypted. */
  get tlsProtocol(): string | undefined {
    return this.connection.tlsProtocol;
  }

  async start(): Promise<void> {
    await this.connection.start();
  }

  waitOnline(timeoutMs: number): Promise<void> {
    return this.connection.waitOnline(timeoutMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.presenceTimer);
    await this.connection.stop();
  }

  /**
   * Directed presence (RFC 6121 §4.6) tells the gateway this device is reachable; the server
   * tells it when our session ends. Sent again periodically: the gateway may have been away when we came
   * online (presence to an absent component bounces), and a device that vanished without a word must age out.
   * With a legacy address configured, each presence carries it (`<device xmlns='urn:xmpp-http-gateway:device:0'
   * legacyAddress='…'/>`, the gateway's own extension), and the gateway records it for forward-proxy mode.
   */
  private announce(): void {
    const send = () => {
      if (this.connection.online)
        this.connection.send(el("presence", { to: this.opts.gatewayJid }, ...this.announcement)).catch(() => undefined);
    };
    send();
    clearInterval(this.presenceTimer);
    this.presenceTimer = setInterval(send, this.opts.presenceIntervalMs);
    this.presenceTimer.unref(); // the connection, not this timer, keeps an agent process alive
  }

  private isGateway(from: string | undefined): boolean {
    return from !== undefined && bareJid(from) === bareJid(this.opts.gatewayJid);
  }

  private onStanza(stanza: XmlElement): void {
    if (stanza.name !== "message" || !this.isGateway(stanza.attrs.from)) return;
    const from = stanza.attrs.from as string;
    for (const child of childElements(stanza)) {
      if (isChunk(child)) {
        try {
          this.streams.offer(from, decodeChunk(child));
        } catch (err) {
          if (child.attrs.streamId) this.streams.fail(from, child.attrs.streamId, err);
        }
      } else if (isClose(child) && child.attrs.streamId) {
        this.streams.fail(from, child.attrs.streamId);
      }
    }
  }

  private async serve(stanza: XmlElement, payload: XmlElement): Promise<{ reply: XmlElement; after?: () => void }> {
    const from = stanza.attrs.from ?? "";
    if (!this.isGateway(from)) return { reply: stanzaError("cancel", "forbidden") };
    let request: HttpRequestMessage;
    let maxChunkSize: number | undefined;
    try {
      const decoded = decodeRequest(payload);
      maxChunkSize = decoded.maxChunkSize;
      const body = decoded.body.kind === "inline" ? decoded.body.bytes : await this.receiveBody(from, decoded.body.streamId);
      request = { method: decoded.method, resource: decoded.resource, headers: decoded.headers, body };
    } catch (err) {
      this.deps.log.warn({ event: "bad-request", device: this.jid, err: (err as Error).message }, "request refused");
      return { reply: codecErrorToStanzaError(err) };
    }
    const spans = this.deps.tracing ? this.startSpans(this.deps.tracing, request) : undefined;
    if (spans) request = { ...request, headers: withTraceFields(request.headers, spans.local.fields) };
    let response: HttpResponseMessage;
    try {
      response = await callLocal(this.localUrl, request, {
        timeoutMs: this.opts.localTimeoutMs,
        maxBodyBytes: this.opts.maxBodyBytes,
        ...(this.deps.httpAgent ? { agent: this.deps.httpAgent } : {}),
      });
    } catch (err) {
      // node's http.request throws synchronously on what it will not send; the gateway still gets an answer.
      response = localFailure(502, "local-unreachable", `device HTTP server not called: ${(err as Error).message}`);
    }
    if (spans) {
      const failure = agentError(response);
      spans.local.answered(response.statusCode, 400, failure);
      spans.local.end();
      spans.request.answered(response.statusCode, 500, failure);
      spans.request.end();
    }
    const encodeOptions = {
      chunkThreshold: this.opts.chunkThresholdBytes,
      chunkSize: Math.min(this.opts.chunkSizeBytes, maxChunkSize ?? this.opts.chunkSizeBytes),
      newStreamId: () => randomBytes(12).toString("base64url"),
    };
    let encoded: Encoded;
    let failed = agentError(response);
    try {
      encoded = encodeResponse(carriable(response), encodeOptions);
    } catch (err) {
      failed = "local-bad-reply";
      // Whatever the codec refuses of a device's reply is that reply's fault, never a reason to leave the
      // gateway waiting until its deadline: the agent's own 502, which always encodes.
      encoded = encodeResponse(
        localFailure(502, "local-bad-reply", `device reply cannot be carried: ${(err as Error).message}`),
        encodeOptions,
      );
    }
    if (failed !== undefined)
      this.deps.log.warn({ event: "local-failure", device: this.jid, code: failed }, "the agent answered for the device");
    if (encoded.chunks.length === 0) return { reply: encoded.payload };
    return {
      reply: encoded.payload,
      after: () => void this.sendChunks(from, encoded.chunks),
    };
  }

  /**
   * The request's SERVER span, continuing the gateway's trace from the `<req>`'s traceparent (its exchange's
   * span), and the CLIENT span of the call to the device's own HTTP server, whose fields the device gets as
   * its traceparent (the gateway's replaced).
   */
  private startSpans(tracing: Tracing, request: HttpRequestMessage): { request: TraceSpan; local: TraceSpan } {
    const path = pathOnly(request.resource);
    const span = tracing.continue("device agent", "server", traceFieldsOf(request.headers), {
      [ATTR.method]: request.method,
      [ATTR.path]: path,
      [ATTR.deviceJid]: this.jid,
    });
    const local = span.child(request.method, "client", {
      [ATTR.method]: request.method,
      [ATTR.path]: path,
      [ATTR.serverAddress]: this.localUrl.hostname,
      [ATTR.serverPort]: Number(this.localUrl.port || (this.localUrl.protocol === "https:" ? 443 : 80)),
    });
    return { request: span, local };
  }

  private async sendChunks(to: string, chunks: XmlElement[]): Promise<void> {
    try {
      for (const chunk of chunks) await this.connection.send(el("message", { to }, chunk));
    } catch (err) {
      // The connection dropped mid-stream: the gateway's deadline answers the client (504).
      this.deps.log.warn({ event: "chunks-not-sent", device: this.jid, err: (err as Error).message }, "reply stream cut");
    }
  }

  /** Waits for a chunked request body, no longer than the local timeout. */
  private receiveBody(from: string, streamId: string): Promise<Buffer> {
    const body = this.streams.expect(from, streamId, this.opts.maxBodyBytes);
    const timer = setTimeout(
      () =>
        this.streams.fail(
          from,
          streamId,
          new CodecError("malformed", `request body stream ${streamId} incomplete after ${this.opts.localTimeoutMs} ms`),
        ),
      this.opts.localTimeoutMs,
    );
    return body.finally(() => clearTimeout(timer));
  }
}

/**
 * The last guard before a device's reply becomes XML on this connection's stream: text XML 1.0 cannot carry
 * (§2.2; NUL, most C0 controls, lone surrogates) would make the server end the stream for every request on
 * it (RFC 6120 §4.9.3.13), so a reply with any is refused here even if something upstream let it through.
 */
function carriable(response: HttpResponseMessage): HttpResponseMessage {
  const texts = [response.statusMessage ?? "", ...response.headers.flat()];
  if (texts.some(hasForbiddenXmlChars)) throw new Error("a reason phrase or header holds a character XML 1.0 cannot carry");
  return response;
}

/** The agent's own failure code, when the answer is the agent's and not the device's (local-http.ts). */
function agentError(response: HttpResponseMessage): string | undefined {
  return response.headers.find(([n]) => n === "X-Device-Agent-Error")?.[1];
}

/** RFC 6120 §8.3.3: a request we cannot decode is `bad-request`; a form we do not carry, `feature-not-implemented`. */
function codecErrorToStanzaError(err: unknown): XmlElement {
  const message = (err as Error).message;
  if (err instanceof CodecError && err.reason === "unsupported") return stanzaError("cancel", "feature-not-implemented", message);
  if (err instanceof CodecError && err.reason === "too-large") return stanzaError("modify", "not-acceptable", message);
  return stanzaError("modify", "bad-request", message);
}
