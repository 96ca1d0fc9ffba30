import { decodeChunk, encodeClose } from "../../lib/xep0332/chunks.js";
import { CodecError } from "../../lib/xep0332/errors.js";
import { checkHeadLimits, headerValue } from "../../lib/xep0332/headers.js";
import { decodeResponse, encodeRequest, type HttpRequestMessage, type HttpResponseMessage } from "../../lib/xep0332/message.js";
import { childElements, el, type XmlElement } from "../../lib/xep0332/xml.js";
import { InboundStreams, StreamCancelled } from "../../lib/xep0332/inbound-streams.js";
import { normalizeJid, sameJid } from "../../lib/xmpp/jid.js";
import { IDEMPOTENT } from "../../lib/http/stale-retry.js";
import { stanzaErrorOf } from "../../lib/xmpp/stanza-error.js";
import { forLog, isAcceptableStreamId, MAX_STREAM_ID_LENGTH, newId } from "../correlation/ids.js";
import type { ByteBudget, Reservation } from "../limits/byte-budget.js";
import type { PendingExchange, PendingExchanges } from "../correlation/pending.js";
import type { CorrelationEntry, CorrelationStore } from "../correlation/store.js";
import { ATTR, pathOnly } from "../../lib/tracing/attributes.js";
import { withTraceFields } from "../../lib/tracing/trace-context.js";
import type { TraceSpan } from "../../lib/tracing/tracing.js";
import { failSpan, traced } from "../tracing/traced.js";
import type { StreamRoutes } from "../correlation/stream-routes.js";
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
  /** The request's span, when the instance traces: the exchange's span is its child. */
  trace?: TraceSpan | undefined;
}

/** A request as it is sent: with its exchange's span when traced (the `<req>` then names it as the device's parent). */
type SentRequest = ExchangeRequest & { span?: TraceSpan };

export interface ExchangeDeps {
  component: XmppComponent;
  store: CorrelationStore;
  streamRoutes: StreamRoutes;
  pending: PendingExchanges;
  metrics: Metrics;
  logger: Logger;
  instanceId: string;
  limits: ExchangeLimits;
  /** The instance's GATEWAY_MAX_BUFFERED_BYTES: reply bodies reserve their bytes in it while they are held. */
  budget?: ByteBudget;
}

type Hold = Pick<Reservation, "add" | "release">;

/** A reply's bytes in the budget, and the stream its chunks arrive on (the device's JID and stream id). */
interface ReplyHold {
  reservation: Hold;
  streamKey?: string;
  stream?: { jid: string; streamId: string };
}

/** How often one request may be sent again, one departure of another instance's connection each. */
export const MAX_RESENDS = 2;

/** The longest stanza error text carried into an error message (stored in Redis, logged, sent to the client). */
const MAX_ERROR_TEXT = 256;

/** An exchange whose correlation record is on its way (XmppExchanger.prepare): sent, or cancelled, once. */
export interface PreparedExchange {
  /** Sends the request (its record written, or on its way: see send()); `timeoutMs` is what is left of the request's deadline. */
  send(timeoutMs: number): Promise<HttpResponseMessage>;
  /** Never sent (`err`: why not): the record goes. */
  cancel(err?: unknown): void;
}

/** What became of a reply or chunk offered to this instance's exchanges. */
export type Offer = "taken" | "not-mine";

/**
 * One HTTP exchange with a device over XEP-0332: IQ `set` with `<req>` out, IQ `result` with `<resp>` (and
 * `<chunk>` messages for large bodies) back. Replies to exchanges of this instance are finished here; the
 * ReplyRouter decides what reaches it (local, forwarded by another instance, or dropped).
 */
export class XmppExchanger {
  /** Chunked reply bodies of this instance's exchanges. No early buffer here: an unclaimed chunk may be
   * another instance's, so it is parked in Redis instead (StreamRoutes). */
  readonly streams = new InboundStreams({ maxEarlyBytes: 0, maxEarlyAgeMs: 0 }, () => false);
  private readonly log: Logger;
  /** Reply bytes held per exchange id, and the same reservations by stream while chunks arrive. */
  private readonly holds = new Map<string, ReplyHold>();
  private readonly streamHolds = new Map<string, Hold>();
  /**
   * Sent requests that may go again (see resendUnanswered), and how often each was resent. The IQ is built
   * again for a resend, rare, rather than kept: its element tree would be held for every request in flight.
   */
  private readonly resendable = new Map<string, { request: SentRequest; resends: number }>();
  private closing = false;
  /** `send`, for the prepared exchanges: one function for them all, not a closure each. */
  private readonly sender: Sender = (id, req, entry, timeoutMs) => this.send(id, req, entry, timeoutMs);

  constructor(private readonly deps: ExchangeDeps) {
    this.log = deps.logger.child({ component: "exchange" });
  }

  /**
   * The drain bound (SIGTERM): every exchange still waiting was sent, so it ends "outcome unknown", which
   * keeps its Idempotency-Key (the device may act on it yet); none is sent from now on, and those end
   * GW_SHUTTING_DOWN, which proves the device was not reached.
   */
  shutDown(): void {
    this.closing = true;
    this.deps.pending.failAll(
      new GatewayError("GW_OUTCOME_UNKNOWN", {
        message: "the gateway instance shut down after the request was sent to the device: whether the device acted is unknown",
      }),
    );
  }

  /**
   * The first half of an exchange, before the device's in-flight slot is asked for: a fresh id, and the
   * checks that nothing may be sent now (the instance shuts down, the component is offline), which throw
   * before any slot is taken. Then `send` once the slot is held, or `cancel` when none came.
   */
  prepare(req: ExchangeRequest): PreparedExchange {
    if (this.closing) throw new GatewayError("GW_SHUTTING_DOWN");
    if (!this.deps.component.online) throw new GatewayError("GW_XMPP_UNAVAILABLE");
    const id = newId();
    const entry: CorrelationEntry = {
      owner: this.deps.instanceId,
      deviceId: req.deviceId,
      jid: req.jid,
      deadline: Date.now() + req.timeoutMs,
    };
    // Traced: the exchange's span, named in the record (for an instance the reply reaches instead of this
    // one) and in the <req> (for the device). Nothing of it for an untraced request.
    const span = req.trace ? exchangeSpan(req.trace, id, req) : undefined;
    if (span) entry.trace = span.fields;
    return new Prepared(this.sender, id, span ? { ...req, span } : req, entry, span);
  }

  /**
   * The second half, as xmpp.js's iq caller does it: the pending entry, the IQ (and its body chunks) sent
   * with its correlation record, a failed send settling the entry, and every way out (reply, error,
   * deadline, drain) cleaning up here: the stream still receiving, the reply's bytes, the record.
   *
   * Not an async function: the caller gets the reply's own promise (with the cleanup attached) in the tick
   * it asked, before anything can settle it, and nothing else waits per request. An async function here
   * kept a promise of its own following the reply's, and a guard against the deadline's rejection while
   * the IQ was written: with thousands of requests held, memory per request.
   */
  private send(id: string, req: SentRequest, entry: CorrelationEntry, timeoutMs: number): Promise<HttpResponseMessage> {
    const { store } = this.deps;
    // With Redis away the record's write fails at once (no offline queue), before anything is sent: the
    // request ends GW_STORE_UNAVAILABLE, the device not reached. While it is connected the IQ does not wait
    // for the write (transmit).
    if (!store.connected) return store.put(id, entry, req.timeoutMs).then(() => this.dispatch(id, req, undefined, timeoutMs));
    return this.dispatch(id, req, entry, timeoutMs);
  }

  /** Sends exchange `id`'s request; `record`: its correlation record, unless it is written already. */
  private dispatch(id: string, req: SentRequest, record: CorrelationEntry | undefined, timeoutMs: number): Promise<HttpResponseMessage> {
    const { component, store, pending } = this.deps;
    // Checked again (the slot may have taken a while), with nothing awaited before pending.add: an exchange
    // is either failed by shutDown() as sent, or never sent at all.
    const refusal = this.closing ? "GW_SHUTTING_DOWN" : component.online ? undefined : "GW_XMPP_UNAVAILABLE";
    if (refusal) {
      if (!record) store.remove(id, req.jid);
      return Promise.reject(new GatewayError(refusal));
    }
    // Cleaned up by ended(), which PendingExchanges calls however the exchange ends.
    const reply = pending.add(id, req.deviceId, req.jid, timeoutMs);
    // A write that fails ends the exchange (a no-op if its deadline came first).
    this.transmit(id, req, record).catch((err: unknown) => pending.settle(id, toGatewayError(err), "late"));
    return reply;
  }

  /**
   * Every way out of an exchange (reply, error, deadline, drain): the stream still receiving, the reply's
   * bytes, the record. PendingExchanges' `onSettled` hook (wired by the composition root), called as the
   * exchange settles, before its caller sees the outcome: a `.finally` on each exchange's promise did the
   * same with a promise, a reaction and three closures held for as long as the request waited.
   */
  ended(exchange: PendingExchange): void {
    const { id } = exchange;
    this.resendable.delete(id);
    this.endStream(id);
    this.releaseHold(id);
    this.deps.store.remove(id, exchange.jid);
  }

  /**
   * Another instance's component connection closed (README, "Running several instances"). The XMPP server
   * may have routed a reply for one of our exchanges to it as it closed, and that reply is gone: ejabberd
   * spreads a component domain's stanzas over all its connections, and XEP-0114 gives a component no way to
   * leave that balancing before it closes. So every exchange still waiting whose request a client could
   * itself repeat (an idempotent method, RFC 9110 §9.2.2, with no Idempotency-Key: the key promises the device
   * sees the request at most once, README "Idempotency-Key"), whose request went whole in its IQ (no body
   * chunks) and whose reply has not started, is sent again, with the same IQ id: whichever reply comes
   * first answers the client, and the other is dropped as a duplicate. Returns how many went again.
   */
  resendUnanswered(departed: string): number {
    if (this.closing || !this.deps.component.online) return 0;
    let sent = 0;
    for (const [id, request] of this.resendable) {
      const entry = this.deps.pending.get(id);
      if (!entry || entry.streamId !== undefined || request.resends >= MAX_RESENDS) continue;
      request.resends++;
      sent++;
      // The same IQ again (same id and body: a request that went whole, without chunks). A send that fails
      // leaves the exchange to its deadline, as the first one would have.
      this.deps.component.send(this.encode(id, request.request).iq).catch(() => undefined);
    }
    if (sent > 0) {
      this.deps.metrics.iqResends.inc(sent);
      this.log.info({ event: "resent", departed, count: sent }, "requests sent again: another instance's component connection closed");
    }
    return sent;
  }

  /**
   * Sends the IQ, then its body's chunks (XEP-0332 §3: as messages from the same full JID), and writes
   * `record`, the exchange's correlation record, unless it is written already. A function of its own so
   * that the stanzas are garbage once written: nothing of them stays in the frame that waits for the reply.
   */
  private async transmit(id: string, req: SentRequest, record: CorrelationEntry | undefined): Promise<void> {
    const { component } = this.deps;
    const encoded = this.encode(id, req);
    const sent = component.send(encoded.iq);
    // Asked for after the IQ, in the same tick: the IQ is written at the end of this pass of the event loop
    // (the component's write batch), and the record is held a moment (CorrelationStore.record): most
    // exchanges end before it is due, and are never written to Redis.
    // The record is needed only by another instance the reply may reach instead of this one (ReplyRouter):
    // should it not be there yet, that instance looks it up again until REDIS_COMMAND_TIMEOUT_MS
    // (lookAgainWaits). A reply reaching this instance needs no record.
    if (record) this.deps.store.record(id, record, req.timeoutMs);
    await sent;
    for (const chunk of encoded.chunks) await component.send(el("message", { to: req.jid, from: component.domain }, chunk));
    // Only while it waits: its deadline may have ended it while the IQ was written.
    if (encoded.chunks.length === 0 && mayResend(req.message) && this.deps.pending.get(id))
      this.resendable.set(id, { request: req, resends: 0 });
  }

  /** The request's IQ (XEP-0332 §2) under exchange id `id`, and the chunks its body goes in if it is large. */
  private encode(id: string, req: SentRequest): { iq: XmlElement; chunks: XmlElement[] } {
    const { component, limits } = this.deps;
    // Traced: the device's parent is this exchange's span, never the client's own traceparent (replaced).
    const message = req.span ? { ...req.message, headers: withTraceFields(req.message.headers, req.span.fields) } : req.message;
    const encoded = encodeRequest(message, {
      chunkThreshold: limits.chunkThresholdBytes,
      chunkSize: limits.chunkSizeBytes,
      maxChunkSize: limits.chunkSizeBytes,
      newStreamId: newId,
    });
    return { iq: el("iq", { type: "set", id, to: req.jid, from: component.domain }, encoded.payload), chunks: encoded.chunks };
  }

  /** An IQ result or error: finished here when this instance is waiting for it. */
  offerReply(stanza: XmlElement): Offer {
    const { pending } = this.deps;
    const id = stanza.attrs.id ?? "";
    const entry = pending.get(id);
    if (!entry) return "not-mine";
    if (!sameJid(stanza.attrs.from, entry.jid)) {
      this.drop("spoofed", { id, from: stanza.attrs.from, expected: entry.jid });
      return "taken";
    }
    if (entry.streamId) {
      this.drop("duplicate", { id });
      return "taken";
    }
    if (stanza.attrs.type === "error") {
      const { condition, text } = stanzaErrorOf(stanza);
      // Both are the device's text: cut so that neither the stored outcome nor the client's JSON grows with it.
      pending.settle(
        id,
        stanzaErrorToGatewayError(
          condition.slice(0, 64),
          text === undefined ? undefined : forLog(text, MAX_ERROR_TEXT),
          this.deps.limits.offlineRetryAfterS,
        ),
      );
      return "taken";
    }
    let decoded;
    try {
      const payload = childElements(stanza)[0];
      if (!payload) throw new CodecError("malformed", "IQ result without a <resp>");
      decoded = decodeResponse(payload);
      if (decoded.statusCode < 200) throw new CodecError("malformed", `interim status ${decoded.statusCode} as a final reply`);
      // Every field may be legal and the head still more than a client can read (thousands of fields).
      checkHeadLimits(decoded.headers, decoded.statusMessage);
    } catch (err) {
      this.badReply(entry, err);
      return "taken";
    }
    const head = { statusCode: decoded.statusCode, statusMessage: decoded.statusMessage, headers: decoded.headers };
    if (decoded.body.kind === "inline") {
      if (decoded.body.bytes.length > this.deps.limits.maxReplyBytes) {
        this.badReply(entry, new CodecError("too-large", `reply body over ${this.deps.limits.maxReplyBytes} bytes`));
      } else if (!this.hold(id).reservation.add(decoded.body.bytes.length)) {
        pending.settle(id, overBudget());
      } else {
        pending.settle(id, { ...head, body: decoded.body.bytes });
      }
      return "taken";
    }
    if (!isAcceptableStreamId(decoded.body.streamId)) {
      this.badReply(
        entry,
        new CodecError(
          "malformed",
          `stream id ${forLog(decoded.body.streamId)} is over ${MAX_STREAM_ID_LENGTH} characters or has control characters`,
        ),
      );
      return "taken";
    }
    this.awaitBody(entry, head, decoded.body.streamId);
    return "taken";
  }

  /** A `<chunk>` (inside its message): taken when it belongs to a stream this instance is receiving. */
  offerChunk(from: string, chunk: XmlElement): Offer {
    const streamId = chunk.attrs.streamId;
    if (!streamId || !this.streams.has(from, streamId)) return "not-mine";
    try {
      const decoded = decodeChunk(chunk);
      // Reserved before the assembler keeps it: a body that no longer fits fails its exchange (503).
      if (this.streamHolds.get(streamKeyOf(from, streamId))?.add(decoded.bytes.length) === false) {
        this.streams.fail(from, streamId, overBudget());
        return "taken";
      }
      this.streams.offer(from, decoded);
    } catch (err) {
      this.streams.fail(from, streamId, err); // fails the exchange with 502 (see awaitBody)
    }
    return "taken";
  }

  /** The reply's head announced a chunked body: receive it here, and claim the stream for this instance. */
  private awaitBody(entry: PendingExchange, head: Omit<HttpResponseMessage, "body">, streamId: string): void {
    const { pending, streamRoutes, instanceId, limits } = this.deps;
    // The device announced a stream id it already uses for another exchange still receiving: chunks cannot
    // be told apart, so this reply is refused, and the open stream is left alone (no <close>, and not marked
    // as this exchange's, so that its end does not release the other's).
    if (this.streams.has(entry.jid, streamId)) {
      this.badReply(entry, new CodecError("malformed", `stream ${streamId} is already open for another exchange`));
      return;
    }
    pending.markStreaming(entry.id, streamId);
    const hold = this.hold(entry.id);
    hold.stream = { jid: entry.jid, streamId };
    hold.streamKey = streamKeyOf(entry.jid, streamId);
    this.streamHolds.set(hold.streamKey, hold.reservation);
    // Listen first, then claim: a chunk forwarded because of the claim always finds the stream here.
    this.streams.expect(entry.jid, streamId, limits.maxReplyBytes).then(
      (body) => pending.settle(entry.id, { ...head, body }),
      (err: unknown) => {
        if (err instanceof GatewayError) {
          this.sendClose(entry.jid, streamId);
          pending.settle(entry.id, err);
        } else if (!(err instanceof StreamCancelled)) this.badReply(entry, err, streamId);
      },
    );
    streamRoutes.claim(entry.jid, streamId, instanceId, entry.deadline - Date.now()).then(
      ({ parked, overflowed }) => {
        // Chunks of this stream were refused while it waited (the sender parked more than its bound).
        if (overflowed)
          this.streams.fail(entry.jid, streamId, new CodecError("too-large", `chunks sent ahead of the reply exceed what may wait for it`));
        for (const raw of parked) {
          const chunk = parseParked(raw);
          // Counted like any chunk that comes after its stream ended (failed, or past its deadline).
          if (!chunk || this.offerChunk(entry.jid, chunk) === "not-mine") this.drop("late", { id: entry.id, streamId, parked: true });
        }
      },
      // Without the claim, chunks that reach other instances cannot find us: the deadline answers (504).
      (err: unknown) => this.log.warn({ event: "claim-failed", id: entry.id, err: (err as Error).message }, "stream claim failed"),
    );
  }

  /** A reply that is not valid XEP-0332 fails its exchange with 502, and a stream in progress is closed. */
  private badReply(entry: PendingExchange, err: unknown, streamId?: string): void {
    const message = err instanceof CodecError ? `device reply is not valid XEP-0332: ${err.message}` : undefined;
    this.drop("malformed", { id: entry.id, deviceId: entry.deviceId, err: (err as Error).message });
    if (streamId) this.sendClose(entry.jid, streamId);
    this.deps.pending.settle(entry.id, new GatewayError("GW_BAD_DEVICE_REPLY", message ? { message } : {}));
  }

  private sendClose(jid: string, streamId: string): void {
    this.deps.component.send(el("message", { to: jid, from: this.deps.component.domain }, encodeClose(streamId))).catch(() => undefined);
  }

  /** The exchange's reservation for its reply's bytes (one that never refuses without a budget). */
  private hold(id: string): ReplyHold {
    const held = this.holds.get(id);
    if (held) return held;
    const hold: ReplyHold = { reservation: this.deps.budget?.open() ?? UNBOUNDED };
    this.holds.set(id, hold);
    return hold;
  }

  /**
   * The exchange is over: a stream it was still receiving (cut off by the deadline or the drain) is released,
   * and closed at the device too (XEP-0332 `<close>`), which may still be sending.
   */
  private endStream(id: string): void {
    const stream = this.holds.get(id)?.stream;
    if (stream && this.streams.fail(stream.jid, stream.streamId)) this.sendClose(stream.jid, stream.streamId);
  }

  /** The exchange is over: its reply went to its caller (or never came), and its bytes leave the budget. */
  private releaseHold(id: string): void {
    const hold = this.holds.get(id);
    if (!hold) return;
    this.holds.delete(id);
    // Only its own: a later exchange may already have announced the same stream id.
    if (hold.streamKey && this.streamHolds.get(hold.streamKey) === hold.reservation) this.streamHolds.delete(hold.streamKey);
    hold.reservation.release();
  }

  drop(reason: DropReason, fields: Record<string, unknown>): void {
    this.deps.metrics.repliesDropped.inc({ reason });
    this.log.warn({ event: "reply-dropped", reason, ...fields }, `device reply dropped: ${reason}`);
  }
}

/** The CLIENT span of one exchange, a child of the request's (README, "Tracing"). */
function exchangeSpan(parent: TraceSpan, id: string, req: ExchangeRequest): TraceSpan {
  const { method, resource } = req.message;
  return parent.child("xmpp exchange", "client", {
    [ATTR.method]: method,
    [ATTR.path]: pathOnly(resource),
    [ATTR.deviceId]: req.deviceId,
    [ATTR.transport]: "xmpp",
    [ATTR.exchangeId]: id,
  });
}

/** XmppExchanger's send: exchange `id`'s request, its record, and what is left of its deadline. */
type Sender = (id: string, req: SentRequest, entry: CorrelationEntry, timeoutMs: number) => Promise<HttpResponseMessage>;

/**
 * An exchange prepared and not yet sent (XmppExchanger.prepare). A class: a request waiting for its device's
 * slot holds this object alone, where an object of two closures kept them and their shared context.
 */
class Prepared implements PreparedExchange {
  private used = false;

  constructor(
    private readonly sender: Sender,
    private readonly id: string,
    private readonly request: SentRequest,
    private readonly entry: CorrelationEntry,
    private readonly span: TraceSpan | undefined,
  ) {}

  send(timeoutMs: number): Promise<HttpResponseMessage> {
    this.used = true;
    const reply = this.sender(this.id, this.request, this.entry, timeoutMs);
    const span = this.span;
    // Ended with the device's status (in error from 400, as the HTTP semantic conventions have it for a
    // client span), or the catalogue code the exchange failed with.
    return span ? traced(span, reply, (answer) => span.answered(answer.statusCode, 400)) : reply;
  }

  cancel(err?: unknown): void {
    if (this.used) return;
    this.used = true;
    if (!this.span) return;
    failSpan(this.span, err);
    this.span.end();
  }
}

function parseParked(raw: string): XmlElement | undefined {
  try {
    return JSON.parse(raw) as XmlElement;
  } catch {
    return undefined;
  }
}

/** Without a budget: a reservation that takes anything. */
const UNBOUNDED: Hold = { add: () => true, release: () => undefined };

function streamKeyOf(jid: string, streamId: string): string {
  return `${normalizeJid(jid)}\n${streamId}`;
}

function overBudget(): GatewayError {
  return new GatewayError("GW_OVERLOADED", {
    message: "device reply could not be held: the instance holds as many request and reply bytes as it may",
    retryAfterS: 1,
  });
}

/** An idempotent method (RFC 9110 §9.2.2) without an Idempotency-Key, whose client asked for at most once. */
function mayResend(message: HttpRequestMessage): boolean {
  return IDEMPOTENT.has(message.method) && headerValue(message.headers, "idempotency-key") === undefined;
}
