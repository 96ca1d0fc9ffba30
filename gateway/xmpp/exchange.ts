import { decodeChunk, encodeClose, isChunk, type Chunk } from "../../adapters/xep0332/chunks.js";
import { CodecError } from "../../adapters/xep0332/errors.js";
import { decodeResponse, encodeRequest, type HttpRequestMessage, type HttpResponseMessage } from "../../adapters/xep0332/message.js";
import { childElements, el, type XmlElement } from "../../adapters/xep0332/xml.js";
import { InboundStreams, StreamCancelled } from "../../adapters/shared/inbound-streams.js";
import { sameJid } from "../../adapters/shared/jid.js";
import { stanzaErrorOf } from "../../adapters/shared/stanza-error.js";
import { newId } from "../correlation/ids.js";
import type { PendingExchange, PendingExchanges } from "../correlation/pending.js";
import type { CorrelationStore } from "../correlation/store.js";
import { GatewayError, toGatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { DropReason, Metrics } from "../metrics/metrics.js";
import type { XmppComponent } from "./component.js";
import { stanzaErrorToGatewayError } from "./stanza-errors.js";

export interface ExchangeLimits {
  maxReplyBytes: number;
  chunkThresholdBytes: number;
  chunkSizeBytes: number;
  offlineRetryAfterS: number;
}

export interface ExchangeRequest {
  deviceId: string;
  jid: string;
  message: HttpRequestMessage;
  timeoutMs: number;
}

export interface ExchangeDeps {
  component: XmppComponent;
  store: CorrelationStore;
  pending: PendingExchanges;
  metrics: Metrics;
  logger: Logger;
  instanceId: string;
  limits: ExchangeLimits;
}

/**
 * One HTTP exchange with a device over XEP-0332: IQ `set` with `<req>` out, IQ `result` with `<resp>` (and
 * `<chunk>` messages for large bodies) back. A reply counts only if it comes from the JID the request went
 * to; everything else is dropped and counted, never written to a client.
 */
export class XmppExchanger {
  /** Chunked reply bodies; early chunks are kept only from devices with an exchange in flight. */
  readonly streams: InboundStreams;
  private readonly log: Logger;

  constructor(private readonly deps: ExchangeDeps) {
    this.log = deps.logger.child({ component: "exchange" });
    this.streams = new InboundStreams(
      { maxEarlyBytes: 4 * Math.max(deps.limits.maxReplyBytes, 1 << 20), maxEarlyAgeMs: 60_000 },
      (from) => deps.pending.hasJid(from),
    );
    deps.component.onStanza((stanza) => this.onStanza(stanza));
  }

  /** Wire into PendingExchanges' onSettled: an exchange that ends (deadline, drain) releases its stream. */
  release(p: PendingExchange): void {
    if (p.streamId) this.streams.fail(p.jid, p.streamId);
  }

  async exchange(req: ExchangeRequest): Promise<HttpResponseMessage> {
    const { component, store, pending, limits } = this.deps;
    if (!component.online) throw new GatewayError("GW_XMPP_UNAVAILABLE");
    const id = newId();
    await store.put(id, { owner: this.deps.instanceId, deviceId: req.deviceId, jid: req.jid, deadline: Date.now() + req.timeoutMs }, req.timeoutMs);
    const reply = pending.add(id, req.deviceId, req.jid, req.timeoutMs);
    // The deadline may fire while the IQ is still being written: never leave the rejection unobserved.
    reply.catch(() => undefined);
    this.deps.metrics.iqInflight.set(pending.size);
    try {
      const encoded = encodeRequest(req.message, {
        chunkThreshold: limits.chunkThresholdBytes,
        chunkSize: limits.chunkSizeBytes,
        maxChunkSize: limits.chunkSizeBytes,
        newStreamId: newId,
      });
      await component.send(el("iq", { type: "set", id, to: req.jid, from: component.domain }, encoded.payload));
      // XEP-0332 §3: the body's chunks follow the IQ, as messages from the same full JID.
      for (const chunk of encoded.chunks) await component.send(el("message", { to: req.jid, from: component.domain }, chunk));
    } catch (err) {
      pending.settle(id, toGatewayError(err), "late");
    }
    try {
      return await reply;
    } finally {
      this.deps.metrics.iqInflight.set(pending.size);
      store.remove(id).catch(() => undefined); // it expires by itself at the deadline anyway
    }
  }

  private onStanza(stanza: XmlElement): void {
    const type = stanza.attrs.type;
    if (stanza.name === "iq" && (type === "result" || type === "error")) {
      this.onIqReply(stanza);
      return;
    }
    if (stanza.name === "message") {
      const chunk = childElements(stanza).find(isChunk);
      if (chunk) this.onChunk(stanza.attrs.from ?? "", chunk);
    }
  }

  private onIqReply(stanza: XmlElement): void {
    const { pending } = this.deps;
    const id = stanza.attrs.id ?? "";
    const entry = pending.get(id);
    if (!entry) return this.drop(pending.recent.get(id) ?? "unknown", { id, from: stanza.attrs.from });
    if (!sameJid(stanza.attrs.from, entry.jid)) return this.drop("spoofed", { id, from: stanza.attrs.from, expected: entry.jid });
    if (entry.streamId) return this.drop("duplicate", { id });

    if (stanza.attrs.type === "error") {
      const { condition, text } = stanzaErrorOf(stanza);
      pending.settle(id, stanzaErrorToGatewayError(condition, text, this.deps.limits.offlineRetryAfterS));
      return;
    }
    let decoded;
    try {
      const payload = childElements(stanza)[0];
      if (!payload) throw new CodecError("malformed", "IQ result without a <resp>");
      decoded = decodeResponse(payload);
      if (decoded.statusCode < 200) throw new CodecError("malformed", `interim status ${decoded.statusCode} as a final reply`);
    } catch (err) {
      this.badReply(entry, err);
      return;
    }
    const head = { statusCode: decoded.statusCode, statusMessage: decoded.statusMessage, headers: decoded.headers };
    if (decoded.body.kind === "inline") {
      if (decoded.body.bytes.length > this.deps.limits.maxReplyBytes) {
        this.badReply(entry, new CodecError("too-large", `reply body over ${this.deps.limits.maxReplyBytes} bytes`));
        return;
      }
      pending.settle(id, { ...head, body: decoded.body.bytes });
      return;
    }
    const streamId = decoded.body.streamId;
    pending.markStreaming(id, streamId);
    this.streams.expect(entry.jid, streamId, this.deps.limits.maxReplyBytes).then(
      (body) => pending.settle(id, { ...head, body }),
      (err: unknown) => {
        if (!(err instanceof StreamCancelled)) this.badReply(entry, err, streamId);
      },
    );
  }

  private onChunk(from: string, node: XmlElement): void {
    let chunk: Chunk;
    try {
      chunk = decodeChunk(node);
    } catch (err) {
      const streamId = node.attrs.streamId;
      // A broken chunk of a stream we expect fails that stream (and so its exchange, with 502).
      if (streamId && this.streams.has(from, streamId)) this.streams.fail(from, streamId, err);
      else this.drop("malformed", { from, err: (err as Error).message });
      return;
    }
    if (!this.streams.offer(from, chunk)) this.drop("unknown", { from, streamId: chunk.streamId });
  }

  /** A reply that is not valid XEP-0332 fails its exchange with 502, and a stream in progress is closed. */
  private badReply(entry: PendingExchange, err: unknown, streamId?: string): void {
    const message = err instanceof CodecError ? `device reply is not valid XEP-0332: ${err.message}` : undefined;
    this.drop("malformed", { id: entry.id, deviceId: entry.deviceId, err: (err as Error).message });
    if (streamId) {
      const close = el("message", { to: entry.jid, from: this.deps.component.domain }, encodeClose(streamId));
      this.deps.component.send(close).catch(() => undefined);
    }
    this.deps.pending.settle(entry.id, new GatewayError("GW_BAD_DEVICE_REPLY", message ? { message } : {}));
  }

  private drop(reason: DropReason, fields: Record<string, unknown>): void {
    this.deps.metrics.repliesDropped.inc({ reason });
    this.log.warn({ event: "reply-dropped", reason, ...fields }, `device reply dropped: ${reason}`);
  }
}
