import { normalizeJid } from "../../adapters/shared/jid.js";
import type { HttpRequestMessage } from "../../adapters/xep0332/message.js";
import type { Logger } from "../log.js";
import type { RedisStore } from "../redis/client.js";

/** One asynchronous request waiting for its device. */
export interface QueuedRequest {
  id: string;
  deviceId: string;
  deadline: number;
  idempotencyKey?: string;
  message: { method: HttpRequestMessage["method"]; resource: string; headers: Array<[string, string]>; body: string };
}

export function toQueued(id: string, deviceId: string, deadline: number, msg: HttpRequestMessage, idempotencyKey?: string): QueuedRequest {
  return {
    id,
    deviceId,
    deadline,
    ...(idempotencyKey ? { idempotencyKey } : {}),
    message: { method: msg.method, resource: msg.resource, headers: msg.headers.map(([n, v]) => [n, v]), body: msg.body.toString("base64") },
  };
}

export function messageOf(q: QueuedRequest): HttpRequestMessage {
  return { method: q.message.method, resource: q.message.resource, headers: q.message.headers, body: Buffer.from(q.message.body, "base64") };
}

/**
 * Asynchronous requests for a device known to be offline wait in `{prefix}queue:{jid}` (a Redis list, so any
 * instance can take them) until the device announces itself; then one instance, holding a short lock,
 * delivers them in order. Requests past their deadline are expired instead of delivered.
 */
export class OfflineQueue {
  private readonly log: Logger;

  constructor(private readonly redis: RedisStore, logger: Logger, private readonly lockMs = 60_000) {
    this.log = logger.child({ component: "offline-queue" });
  }

  async enqueue(jid: string, item: QueuedRequest): Promise<void> {
    const key = this.queueKey(jid);
    await this.redis.run((c) => c.multi().rpush(key, JSON.stringify(item)).pexpireat(key, item.deadline, "GT").pexpireat(key, item.deadline, "NX").exec());
  }

  /**
   * Delivers what waits for this device, one at a time; does nothing if another instance is at it. A
   * delivery that answers "stop" (the instance is shutting down) puts its item back at the head of the
   * queue, in its place, and ends the drain: the device's next announcement lets another instance go on.
   */
  async drain(jid: string, deliver: (item: QueuedRequest) => Promise<void | "stop">, expire: (item: QueuedRequest) => Promise<void>): Promise<void> {
    const key = this.queueKey(jid);
    const lock = this.redis.key("draining", normalizeJid(jid));
    const owner = `${process.pid}-${Date.now()}`;
    const locked = await this.redis.run((c) => c.set(lock, owner, "PX", this.lockMs, "NX"));
    if (locked !== "OK") return;
    try {
      for (;;) {
        const raw = await this.redis.run((c) => c.lpop(key));
        if (!raw) return;
        const item = JSON.parse(raw) as QueuedRequest;
        try {
          if (Date.now() > item.deadline) await expire(item);
          else if ((await deliver(item)) === "stop") {
            await this.redis.run((c) => c.multi().lpush(key, raw).pexpireat(key, item.deadline, "GT").pexpireat(key, item.deadline, "NX").exec());
            return;
          }
        } catch (err) {
          this.log.warn({ event: "queued-delivery-failed", id: item.id, err: (err as Error).message }, "queued request not delivered");
        }
        await this.redis.run((c) => c.pexpire(lock, this.lockMs));
      }
    } finally {
      await this.redis.run((c) => c.del(lock)).catch(() => undefined);
    }
  }

  private queueKey(jid: string): string {
    return this.redis.key("queue", normalizeJid(jid));
  }
}
