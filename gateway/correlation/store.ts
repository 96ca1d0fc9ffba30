import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";

/** What any instance needs to finish an exchange it did not start (DESIGN.md §5). */
export interface CorrelationEntry {
  owner: string;
  deviceId: string;
  jid: string;
  deadline: number;
}

/** `{prefix}corr:{id}` entries: written before the IQ leaves, expiring by themselves at the deadline. */
export class CorrelationStore {
  constructor(private readonly redis: RedisStore) {}

  async put(id: string, entry: CorrelationEntry, ttlMs: number): Promise<void> {
    const ok = await this.redis.run((c) => c.set(this.redis.key("corr", id), JSON.stringify(entry), "PX", Math.max(1, ttlMs), "NX"));
    // 96 random bits make a collision practically impossible; if one happens, refuse rather than share an id.
    if (ok !== "OK") throw new GatewayError("GW_INTERNAL", { message: "correlation id collision" });
  }

  async get(id: string): Promise<CorrelationEntry | undefined> {
    const raw = await this.redis.run((c) => c.get(this.redis.key("corr", id)));
    return raw ? (JSON.parse(raw) as CorrelationEntry) : undefined;
  }

  async remove(id: string): Promise<void> {
    await this.redis.run((c) => c.del(this.redis.key("corr", id)));
  }
}
