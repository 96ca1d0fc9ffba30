import { setTimeout as delay } from "node:timers/promises";
import { isChunk } from "../../lib/xep0332/chunks.js";
import { childElements, type XmlElement } from "../../lib/xep0332/xml.js";
import { forLog, isAcceptableStreamId, isGatewayId } from "../correlation/ids.js";
import type { PendingExchanges } from "../correlation/pending.js";
import { plain, type ReplyBus } from "../correlation/reply-bus.js";
import { CROSSING_MEMORY_MS, type CorrelationEntry, type CorrelationStore } from "../correlation/store.js";
import { ATTR } from "../../lib/tracing/attributes.js";
import type { TraceSpan, Tracing } from "../../lib/tracing/tracing.js";
import type { StreamRoutes } from "../correlation/stream-routes.js";
import type { Metrics } from "../metrics/metrics.js";
import type { XmppExchanger } from "./exchange.js";

/** The first wait before a reply whose correlation record is not found is looked up again; each next doubles. */
const FIRST_LOOK_AGAIN_MS = 25;

/**
 * Replies looked up again at once, at most: beyond, a reply not found at once is dropped. A device that
 * sends replies with ids of no exchange (a spoof, or garbage) costs this instance a lookup each, not a
 * growing number of lookups held for seconds.
 */
export const MAX_LOOKING_AGAIN = 1024;

/**
 * The waits between the lookups of a reply whose correlation record is not there yet: 25 ms, doubling,
 * the last cut so that they add up to `boundMs`. The owner does not wait for its record's write before the
 * IQ leaves (XmppExchanger.send); it holds the record first, up to 1.5 times GATEWAY_CORRELATION_HOLD_MS
 * (75 ms by default), unless replies crossed lately (CorrelationStore); and that write may queue behind
 * the owner's other Redis commands (its client sends one pipeline at a time; a burst of chunk routing is
 * tens of milliseconds of them): the write lands within the owner's command timeout, or fails there (and
 * its exchange has no record to be found). So the lookups go on until that bound, REDIS_COMMAND_TIMEOUT_MS,
 * has passed (the hold is at most half of it: config.ts).
 */
export function lookAgainWaits(boundMs: number): number[] {
  const waits: number[] = [];
  let total = 0;
  for (let wait = FIRST_LOOK_AGAIN_MS; total < boundMs; wait *= 2) {
    const next = Math.min(wait, boundMs - total);
    waits.push(next);
    total += next;
  }
  return waits;
}

export interface ReplyRouterDeps {
  bus: Pick<ReplyBus, "forward">;
  exchanger: XmppExchanger;
  pending: PendingExchanges;
  store: CorrelationStore;
  streamRoutes: StreamRoutes;
  metrics: Metrics;
  instanceId: string;
  /** On when the instance traces: a reply forwarded to its owner is a span of its exchange's trace. */
  tracing?: Tracing | undefined;
  /** REDIS_COMMAND_TIMEOUT_MS: how long a reply whose record is not found is looked up again (lookAgainWaits). */
  recordWriteBoundMs: number;
}

/**
 * Every device reply and chunk, from the XMPP server or forwarded by another instance, goes one of three
 * ways: to an exchange of this instance, to the instance that owns it (through Redis), or dropped and
 * counted. A forwarded stanza is never forwarded again, so nothing can loop between instances.
 */
export class ReplyRouter {
  /** Forwards under way: a stopping instance lets them finish before it closes Redis (see `settle`). */
  private readonly inProgress = new Set<Promise<void>>();
  private readonly lookAgain: readonly number[];
  /** Replies being looked up again now (MAX_LOOKING_AGAIN). */
  private lookingAgain = 0;

  constructor(private readonly deps: ReplyRouterDeps) {
    this.lookAgain = lookAgainWaits(deps.recordWriteBoundMs);
  }

  /** A stanza from the XMPP server (the component's `onStanza`). */
  fromServer(stanza: XmlElement): void {
    this.route(stanza, false);
  }

  /** A stanza another instance forwarded here (the reply bus's `onForwarded`). */
  fromBus(stanza: XmlElement): void {
    this.crossed();
    this.route(stanza, true);
  }

  /** A reply crossed between instances, either way: this one's records are written at once for a while. */
  private crossed(): void {
    this.deps.store.writeHeld(CROSSING_MEMORY_MS);
  }

  private route(stanza: XmlElement, forwarded: boolean): void {
    const type = stanza.attrs.type;
    if (stanza.name === "iq" && (type === "result" || type === "error")) {
      // An id of another shape is none of this gateway's: dropped before any lookup, logged cut short.
      const id = stanza.attrs.id ?? "";
      if (!isGatewayId(id))
        return this.deps.exchanger.drop("unknown", { id: forLog(id), from: stanza.attrs.from, err: "not an id of this gateway" });
      if (this.deps.exchanger.offerReply(stanza) === "taken") return;
      if (forwarded) this.dropUnclaimed(stanza.attrs.id ?? "", "unknown");
      else this.track(this.forwardReply(stanza));
      return;
    }
    if (stanza.name !== "message") return;
    const from = stanza.attrs.from ?? "";
    const chunk = childElements(stanza).find(isChunk);
    if (!chunk) return;
    // The device chooses stream ids; one too long to be a key or a log field is dropped before any lookup.
    const streamId = chunk.attrs.streamId;
    if (streamId !== undefined && !isAcceptableStreamId(streamId)) {
      return this.deps.exchanger.drop("unknown", {
        from,
        streamId: forLog(streamId),
        err: "stream id too long or with control characters",
      });
    }
    if (this.deps.exchanger.offerChunk(from, chunk) === "taken") return;
    if (forwarded) this.deps.exchanger.drop("unknown", { from, streamId: chunk.attrs.streamId, forwarded });
    else this.track(this.routeChunk(from, stanza, chunk));
  }

  /**
   * Waits, at most `boundMs`, for the forwards under way. Called when the component has stopped and before
   * Redis closes: a reply that reached this instance while it was leaving is another instance's client's
   * answer, and must still get there.
   */
  async settle(boundMs: number): Promise<void> {
    if (this.inProgress.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, boundMs);
    });
    await Promise.race([Promise.allSettled([...this.inProgress]), bound]);
    clearTimeout(timer);
  }

  private track(work: Promise<void>): void {
    const tracked: Promise<void> = work.catch(() => undefined).finally(() => this.inProgress.delete(tracked));
    this.inProgress.add(tracked);
  }

  /** A reply for an exchange this instance does not have: its owner is in the correlation entry. */
  private async forwardReply(stanza: XmlElement): Promise<void> {
    const id = stanza.attrs.id ?? "";
    const from = stanza.attrs.from;
    try {
      // One this instance ended lately (a duplicate, a late reply) is its own: no lookup.
      if (from === undefined || this.deps.pending.recent.get(id)) return this.dropUnclaimed(id, "unknown");
      // Looked up under its sender: a reply from anyone but the device the request went to (a spoof of the
      // id) finds nothing, and is dropped here without costing the owner anything. One not there yet is looked
      // up again, until its owner's write of the record has landed or failed (lookAgainWaits): its owner sends
      // the IQ without waiting for that write (XmppExchanger.send).
      const entry = (await this.deps.store.get(from, id)) ?? (await this.lookUpAgain(() => this.deps.store.get(from, id)));
      if (!entry || entry.owner === this.deps.instanceId) return this.dropUnclaimed(id, "unknown");
      this.crossed();
      // The owner traced the exchange: this hop is a child of its span, on this instance.
      const span = entry.trace && this.deps.tracing ? forwardSpan(this.deps.tracing, id, entry) : undefined;
      const delivered = await this.forward(entry.owner, stanza, "iq", { id });
      if (span) {
        if (!delivered) span.fail("owner_gone");
        span.end();
      }
    } catch (err) {
      this.deps.exchanger.drop("unknown", { id, from, err: (err as Error).message });
    }
  }

  /**
   * `look` again after each of the waits, until it finds something (a reply's record; a chunk's way through
   * Redis once its sender's exchange is recorded); undefined if it never did.
   */
  private async lookUpAgain<T>(look: () => Promise<T | undefined>): Promise<T | undefined> {
    if (this.lookingAgain >= MAX_LOOKING_AGAIN) return undefined;
    this.lookingAgain++;
    try {
      for (const wait of this.lookAgain) {
        await delay(wait);
        const found = await look();
        if (found !== undefined) return found;
      }
      return undefined;
    } finally {
      this.lookingAgain--;
    }
  }

  /** A chunk of a stream that is not received here: to its owner, or parked until the owner claims it. */
  private async routeChunk(from: string, stanza: XmlElement, chunk: XmlElement): Promise<void> {
    const streamId = chunk.attrs.streamId;
    if (!streamId) return this.deps.exchanger.drop("malformed", { from, err: "<chunk> without a streamId" });
    try {
      // This instance's exchange with the sender may be held still (CorrelationStore): written now, ahead of
      // the route's lookup, an early chunk of its own reply is parked rather than taken for a stranger's.
      this.deps.store.writeHeld();
      const payload = JSON.stringify(plain(chunk));
      const route = async () => {
        const found = await this.deps.streamRoutes.route(from, streamId, payload);
        return "stranger" in found ? undefined : found;
      };
      // The sender's exchange with another instance may be held there still (CorrelationStore): looked up again
      // as a reply's record is, before the chunk is dropped as a stranger's.
      const where = (await route()) ?? (await this.lookUpAgain(route));
      if (!where) return this.deps.exchanger.drop("unknown", { from, streamId, err: "no exchange in flight to the sender" });
      if ("parked" in where) return;
      if ("full" in where) return this.deps.exchanger.drop("unknown", { from, streamId, err: "too many unclaimed chunks" });
      // Our own claim, but the stream is no longer here: it ended (deadline or complete).
      if (where.owner === this.deps.instanceId) return this.deps.exchanger.drop("late", { from, streamId });
      await this.forward(where.owner, stanza, "chunk", { streamId });
    } catch (err) {
      this.deps.exchanger.drop("unknown", { from, streamId, err: (err as Error).message });
    }
  }

  /** Publishes to the owner; false when it is gone (the stanza is dropped, and counted). */
  private async forward(owner: string, stanza: XmlElement, kind: "iq" | "chunk", fields: Record<string, unknown>): Promise<boolean> {
    if (await this.deps.bus.forward(owner, stanza)) {
      this.deps.metrics.repliesForwarded.inc({ kind });
      return true;
    }
    this.deps.exchanger.drop("unknown", { ...fields, owner, err: "owner instance is gone" });
    return false;
  }

  private dropUnclaimed(id: string, fallback: "unknown"): void {
    this.deps.exchanger.drop(this.deps.pending.recent.get(id) ?? fallback, { id });
  }
}

/**
 * A PRODUCER span for a reply this instance forwards to the owner of its exchange, a child of the exchange's
 * span named in the correlation record (README, "Tracing"): the trace shows which instance the reply came
 * through. A failed lookup or a spoofed reply has none (no exchange of anyone's is involved).
 */
function forwardSpan(tracing: Tracing, id: string, entry: CorrelationEntry): TraceSpan {
  return tracing.continue("reply forward", "producer", entry.trace, {
    [ATTR.exchangeId]: id,
    [ATTR.owner]: entry.owner,
    [ATTR.deviceId]: entry.deviceId,
  });
}
