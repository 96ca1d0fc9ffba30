import type { HttpResponseMessage } from "../../lib/xep0332/message.js";
import { normalizeJid } from "../../lib/xmpp/jid.js";
import { GatewayError } from "../errors.js";
import { RecentOutcomes } from "./recent.js";

export interface PendingExchange {
  readonly id: string;
  readonly deviceId: string;
  /** Normalized full JID the request went to: the only sender whose reply is accepted. */
  readonly jid: string;
  readonly deadline: number;
  /** Set once the reply's head announced a chunked body: the exchange now waits for that stream. */
  readonly streamId?: string;
}

interface Entry extends PendingExchange {
  streamId?: string;
  resolve(reply: HttpResponseMessage): void;
  reject(err: GatewayError): void;
  timer: NodeJS.Timeout;
}

export interface PendingHooks {
  onTimeout?(p: PendingExchange): void;
  /**
   * Called once per exchange, however it ends, before its caller sees the outcome (the gateway's
   * XmppExchanger cleans up after its exchanges here).
   */
  onSettled?(p: PendingExchange): void;
}

/**
 * This process's exchanges in flight. Like xmpp.js's iq caller, but every way out (reply, error, deadline)
 * goes through `settle`, which clears the timer and the entry: nothing outlives its request.
 */
export class PendingExchanges {
  private readonly entries = new Map<string, Entry>();
  private readonly perJid = new Map<string, number>();
  readonly recent = new RecentOutcomes();

  constructor(private readonly hooks: PendingHooks = {}) {}

  get size(): number {
    return this.entries.size;
  }

  add(id: string, deviceId: string, jid: string, timeoutMs: number): Promise<HttpResponseMessage> {
    return new Promise((resolve, reject) => {
      // The id as the timer's argument to one function: a closure per exchange would be held as long as it.
      const timer = setTimeout(this.expire, timeoutMs, id);
      const norm = normalizeJid(jid);
      this.entries.set(id, { id, deviceId, jid: norm, deadline: Date.now() + timeoutMs, resolve, reject, timer });
      this.perJid.set(norm, (this.perJid.get(norm) ?? 0) + 1);
    });
  }

  /** Exchange `id`'s deadline has come. */
  private readonly expire = (id: string): void => {
    const entry = this.entries.get(id);
    if (entry) this.hooks.onTimeout?.(entry);
    this.settle(id, new GatewayError("GW_DEVICE_TIMEOUT"), "late");
  };

  get(id: string): PendingExchange | undefined {
    return this.entries.get(id);
  }

  /** True while some exchange to this JID is in flight: only then are early chunks from it worth keeping. */
  hasJid(jid: string): boolean {
    return (this.perJid.get(normalizeJid(jid)) ?? 0) > 0;
  }

  markStreaming(id: string, streamId: string): void {
    const entry = this.entries.get(id);
    if (entry) entry.streamId = streamId;
  }

  /**
   * Ends an exchange with a reply or an error. `after` says how a later reply for the same id is counted.
   * Returns false when the id was no longer pending.
   */
  settle(id: string, outcome: HttpResponseMessage | GatewayError, after: "late" | "duplicate" = "duplicate"): boolean {
    const entry = this.entries.get(id);
    if (!entry) return false;
    clearTimeout(entry.timer);
    this.entries.delete(id);
    const left = (this.perJid.get(entry.jid) ?? 1) - 1;
    if (left > 0) this.perJid.set(entry.jid, left);
    else this.perJid.delete(entry.jid);
    this.recent.remember(id, after);
    this.hooks.onSettled?.(entry);
    if (outcome instanceof GatewayError) entry.reject(outcome);
    else entry.resolve(outcome);
    return true;
  }

  /** Fails everything still pending (shutdown after the drain bound). */
  failAll(err: GatewayError): void {
    for (const id of [...this.entries.keys()]) this.settle(id, err, "late");
  }
}
