import { createHash, randomBytes } from "node:crypto";
import type { HttpRequestMessage } from "../../lib/xep0332/message.js";
import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";
import { storeError, type StoredOutcome } from "./stored-outcome.js";

/** Methods whose retries could actuate a device twice (RFC 9110 §9.2.2: not safe). */
export const UNSAFE_METHODS: ReadonlySet<string> = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export type IdempotencyBegin = { state: "new" } | { state: "done"; outcome: StoredOutcome };

/**
 * A running entry past its deadline by more than this is taken as ended with an unknown outcome: the
 * instances' clocks may differ a little, and an outcome written at the deadline may still be on its way.
 */
export const RUNNING_GRACE_MS = 5000;

/**
 * `Idempotency-Key` (README, "Idempotency-Key"): the first request with a key runs and its outcome is kept; a retry with
 * the same key and the same request gets that outcome without reaching the device again. The same key with
 * another request is 422 GW_IDEMPOTENCY_MISMATCH; while the first is still running, 409
 * GW_IDEMPOTENCY_IN_FLIGHT. Keys are scoped per device, so two devices never share one.
 *
 * A running entry carries the deadline of its request. When the request never writes its outcome (its
 * instance was killed, Redis was away at that moment), the entry does not answer 409 for the whole key
 * lifetime: past its deadline it becomes a kept 504 GW_DEVICE_TIMEOUT, "outcome unknown". The key is never
 * freed by that (the device may have acted), so a retry still cannot actuate the device a second time.
 *
 * Entry: {"state":"running","fingerprint","deadline"} or {"state":"done","fingerprint","outcome"}.
 */
const BEGIN = `
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 'new'
end
local ok, e = pcall(cjson.decode, v)
if ok and type(e) == 'table' and e.state == 'running' and tonumber(e.deadline) and tonumber(e.deadline) < tonumber(ARGV[3]) then
  v = cjson.encode({ state = 'done', fingerprint = e.fingerprint, outcome = cjson.decode(ARGV[4]) })
  redis.call('SET', KEYS[1], v, 'KEEPTTL')
end
return v`;

/**
 * Changes a running entry of this request (same fingerprint) and nothing else: an entry that meanwhile
 * became "outcome unknown" keeps answering the same to every retry. ARGV: fingerprint, what to do
 * ("done" with the entry to write, "abandon", or "extend" with a new deadline), its argument, TTL, and
 * optionally the claim (the nonce begin() wrote): then only that very claim is changed.
 */
const SETTLE = `
local v = redis.call('GET', KEYS[1])
if not v then
  if ARGV[2] == 'done' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
  return 0
end
local ok, e = pcall(cjson.decode, v)
if not ok or type(e) ~= 'table' or e.state ~= 'running' or e.fingerprint ~= ARGV[1] then return 0 end
if ARGV[5] and ARGV[5] ~= '' and e.claim ~= ARGV[5] then return 0 end
if ARGV[2] == 'done' then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
elseif ARGV[2] == 'abandon' then redis.call('DEL', KEYS[1])
else e.deadline = tonumber(ARGV[3]); redis.call('SET', KEYS[1], cjson.encode(e), 'KEEPTTL') end
return 1`;

interface Entry {
  state: "running" | "done";
  fingerprint: string;
  /** A running entry's nonce, so that a claim whose write failed is taken back and no other. */
  claim?: string;
  deadline?: number;
  outcome?: StoredOutcome;
}

const UNKNOWN_OUTCOME = storeError(
  new GatewayError("GW_DEVICE_TIMEOUT", {
    message:
      "the first request with this Idempotency-Key never recorded its outcome (its instance stopped, or the store was away): whether the device acted is unknown",
  }),
);

export class IdempotencyStore {
  /** (key, running entry, ttl, now, outcome when expired) → "new", or the entry there now. */
  private readonly beginScript: (...args: Array<string | number>) => Promise<string>;
  /** (key, fingerprint, action, argument, ttl) → 1 changed, 0 not this request's running entry. */
  private readonly settleScript: (...args: Array<string | number>) => Promise<number>;

  constructor(
    private readonly redis: RedisStore,
    private readonly ttlMs: number,
  ) {
    // Durable: a claim lost in a failover would let a retry with the same key reach the device again.
    this.beginScript = redis.script<string>("idempotencyBegin", 1, BEGIN, { durable: true });
    this.settleScript = redis.script<number>("idempotencySettle", 1, SETTLE);
  }

  /** What the request is to this key: a fingerprint over method, resource and body (not the headers). */
  static fingerprint(msg: HttpRequestMessage): string {
    return createHash("sha256").update(msg.method).update("\n").update(msg.resource).update("\n").update(msg.body).digest("hex");
  }

  /** Claims the key for a request that ends by `deadline` (epoch ms), or answers what the key holds. */
  async begin(deviceId: string, key: string, fingerprint: string, deadline: number, now = Date.now()): Promise<IdempotencyBegin> {
    const claim = randomBytes(9).toString("base64url");
    const running: Entry = { state: "running", fingerprint, claim, deadline };
    let raw: string;
    try {
      raw = await this.beginScript(
        this.key(deviceId, key),
        JSON.stringify(running),
        this.ttlMs,
        now - RUNNING_GRACE_MS,
        JSON.stringify(UNKNOWN_OUTCOME),
      );
    } catch (err) {
      // The claim may be written and only its replication short (REDIS_WAIT_REPLICAS), or its answer lost: the
      // device is not reached, so take this claim back (and only it), else the key would read "running", then
      // "outcome unknown", for a request that never ran.
      await this.settleScript(this.key(deviceId, key), fingerprint, "abandon", "", this.ttlMs, claim).catch(() => undefined);
      throw err;
    }
    if (raw === "new") return { state: "new" };
    const entry = JSON.parse(raw) as Entry;
    if (entry.fingerprint !== fingerprint) throw new GatewayError("GW_IDEMPOTENCY_MISMATCH");
    if (entry.state === "running" || !entry.outcome) throw new GatewayError("GW_IDEMPOTENCY_IN_FLIGHT", { retryAfterS: 1 });
    return { state: "done", outcome: entry.outcome };
  }

  async finish(deviceId: string, key: string, fingerprint: string, outcome: StoredOutcome): Promise<void> {
    const entry: Entry = { state: "done", fingerprint, outcome };
    await this.settleScript(this.key(deviceId, key), fingerprint, "done", JSON.stringify(entry), this.ttlMs);
  }

  /** Forgets a key whose request never reached the device, so that a retry may. */
  async abandon(deviceId: string, key: string, fingerprint: string): Promise<void> {
    await this.settleScript(this.key(deviceId, key), fingerprint, "abandon", "", this.ttlMs);
  }

  /** A request that now waits in the offline queue runs until a later deadline. */
  async extend(deviceId: string, key: string, fingerprint: string, deadline: number): Promise<void> {
    await this.settleScript(this.key(deviceId, key), fingerprint, "extend", deadline, this.ttlMs);
  }

  private key(deviceId: string, key: string): string {
    // Hashed: the client's key may be long or hold any characters.
    return this.redis.keys.idempotency(deviceId, createHash("sha256").update(key).digest("base64url"));
  }
}
