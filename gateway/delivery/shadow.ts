import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { HttpResponseMessage } from "../../lib/xep0332/message.js";
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics/metrics.js";
import type { RedisStore } from "../redis/client.js";

/**
 * Shadow mode (`transport: "shadow"`): while a device is verified before its cut-over, its safe requests go
 * both ways and the two answers are compared. What is compared: the status, a digest of the body, and the
 * headers that carry meaning for clients (not Date, Server, or framing, which differ by design).
 */
export const COMPARED_HEADERS = ["content-type", "content-encoding", "location", "etag", "cache-control"] as const;

export interface Answer {
  status: number;
  bodySha256: string;
  headers: Record<string, string>;
}

/** One side's result: its answer, or the catalogue code it failed with. */
export type Side = Answer | { error: string };

function pick(get: (name: string) => string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of COMPARED_HEADERS) {
    const value = get(name);
    if (value !== undefined) out[name] = value;
  }
  return out;
}

export function answerOfReply(reply: HttpResponseMessage): Answer {
  const get = (name: string) =>
    reply.headers
      .filter(([n]) => n.toLowerCase() === name)
      .map(([, v]) => v)
      .join(", ") || undefined;
  return { status: reply.statusCode, bodySha256: createHash("sha256").update(reply.body).digest("hex"), headers: pick(get) };
}

/**
 * Hashes a response body as it streams past (it keeps flowing to the client meanwhile). Resolves with the
 * answer once the body ended whole, or with undefined when it broke off (nothing to compare then): it never
 * rejects, so a promise nobody awaits any more (the client's request failed meanwhile) cannot become an
 * unhandled rejection, whatever the device sends.
 */
export function observeAnswer(response: IncomingMessage): Promise<Answer | undefined> {
  const hash = createHash("sha256");
  return new Promise((resolve) => {
    response.on("data", (chunk: Buffer) => hash.update(chunk));
    response.once("end", () => {
      try {
        const get = (name: string) => {
          const v = response.headers[name];
          return Array.isArray(v) ? v.join(", ") : v;
        };
        resolve({ status: response.statusCode ?? 0, bodySha256: hash.digest("hex"), headers: pick(get) });
      } catch {
        resolve(undefined);
      }
    });
    response.once("error", () => resolve(undefined));
    response.once("aborted", () => resolve(undefined));
    response.once("close", () => {
      if (!response.complete) resolve(undefined);
    });
  });
}

/** What differs between the HTTP answer (the truth clients got) and the XMPP one; empty when they agree. */
export function differences(http: Answer, xmpp: Side): string[] {
  if ("error" in xmpp) return [`xmpp failed: ${xmpp.error}`];
  const out: string[] = [];
  if (http.status !== xmpp.status) out.push(`status ${http.status} vs ${xmpp.status}`);
  if (http.bodySha256 !== xmpp.bodySha256) out.push("body");
  for (const name of COMPARED_HEADERS) {
    if (http.headers[name] !== xmpp.headers[name]) out.push(`header ${name}`);
  }
  return out;
}

/** Counts comparisons and mismatches: metrics without a device label (bounded), per-device counts in Redis. */
export class ShadowComparisons {
  private readonly log: Logger;

  constructor(
    private readonly redis: RedisStore,
    private readonly metrics: Metrics,
    logger: Logger,
  ) {
    this.log = logger.child({ component: "shadow" });
  }

  async record(deviceId: string, requestId: string, http: Answer, xmpp: Side): Promise<void> {
    const diff = differences(http, xmpp);
    this.metrics.shadowComparisons.inc({ outcome: diff.length === 0 ? "match" : "mismatch" });
    if (diff.length === 0) return;
    this.metrics.shadowMismatches.inc();
    this.log.warn({ event: "shadow-mismatch", deviceId, requestId, differences: diff, http, xmpp }, "shadow answers differ");
    await this.redis.run((c) => c.hincrby(this.redis.keys.shadowMismatches(), deviceId, 1)).catch(() => undefined);
  }

  /** Mismatches per device since they were last reset (a device's count goes when its entry is deleted). */
  async mismatchesByDevice(): Promise<Record<string, number>> {
    const raw = await this.redis.run((c) => c.hgetall(this.redis.keys.shadowMismatches()));
    return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
  }
}
