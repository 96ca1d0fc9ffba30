import { createHash } from "node:crypto";
import type { HttpRequestMessage } from "../../adapters/xep0332/message.js";
import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";
import type { StoredOutcome } from "./stored-outcome.js";

/** Methods whose retries could actuate a device twice (RFC 9110 §9.2.2: not safe). */
export const UNSAFE_METHODS: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export type IdempotencyBegin = { state: "new" } | { state: "done"; outcome: StoredOutcome };

/**
 * `Idempotency-Key` (DESIGN.md §5): the first request with a key runs and its outcome is kept; a retry with
 * the same key and the same request gets that outcome without reaching the device again. The same key with
 * another request is 422 GW_IDEMPOTENCY_MISMATCH; while the first is still running, 409
 * GW_IDEMPOTENCY_IN_FLIGHT. Keys are scoped per device, so two devices never share one.
 */
const BEGIN = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], cjson.encode({ state = 'running', fingerprint = ARGV[1] }), 'PX', ARGV[2])
  return 'new'
end
return v`;


interface Entry {
  state: "running" | "done";
  fingerprint: string;
  outcome?: StoredOutcome;
}

export class IdempotencyStore {
  /** (key, fingerprint, ttl) → "new", or the entry already there. */
  private readonly beginScript: (...args: Array<string | number>) => Promise<string>;

  constructor(private readonly redis: RedisStore, private readonly ttlMs: number) {
    this.beginScript = redis.script<string>("idempotencyBegin", 1, BEGIN);
  }

  /** What the request is to this key: a fingerprint over method, resource and body (not the headers). */
  static fingerprint(msg: HttpRequestMessage): string {
    return createHash("sha256").update(msg.method).update("\n").update(msg.resource).update("\n").update(msg.body).digest("hex");
  }

  async begin(deviceId: string, key: string, fingerprint: string): Promise<IdempotencyBegin> {
    const raw = await this.beginScript(this.key(deviceId, key), fingerprint, this.ttlMs);
    if (raw === "new") return { state: "new" };
    const entry = JSON.parse(raw) as Entry;
    if (entry.fingerprint !== fingerprint) throw new GatewayError("GW_IDEMPOTENCY_MISMATCH");
    if (entry.state === "running" || !entry.outcome) throw new GatewayError("GW_IDEMPOTENCY_IN_FLIGHT", { retryAfterS: 1 });
    return { state: "done", outcome: entry.outcome };
  }

  async finish(deviceId: string, key: string, fingerprint: string, outcome: StoredOutcome): Promise<void> {
    const entry: Entry = { state: "done", fingerprint, outcome };
    await this.redis.run((c) => c.set(this.key(deviceId, key), JSON.stringify(entry), "PX", this.ttlMs));
  }

  /** Forgets a key whose request never reached the device, so that a retry may. */
  async abandon(deviceId: string, key: string): Promise<void> {
    await this.redis.run((c) => c.del(this.key(deviceId, key)));
  }

  private key(deviceId: string, key: string): string {
    // Hashed: the client's key may be long or hold any characters.
    return this.redis.key("idem", deviceId, createHash("sha256").update(key).digest("base64url"));
  }
}
