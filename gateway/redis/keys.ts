import { normalizeJid } from "../../lib/xmpp/jid.js";
import { keySlot } from "./slots.js";

/** How many sets online() is split into; a count reads them all. */
export const ONLINE_BUCKETS = 16;

/**
 * Every Redis key and pub/sub channel name the gateway uses, in one place (docs/architecture.md, "Redis").
 * Each starts with REDIS_KEY_PREFIX, so deployments (or test suites) can share one Redis. Per-device keys take
 * the canonical (lower-case) device id, per-JID keys the normalized JID (lib/xmpp/jid.ts), so that two
 * spellings of one device never get two keys.
 *
 * Hash tags (Redis Cluster specification, "Hash tags"): a cluster hashes only the text between a key's first
 * `{` and the next `}`, and a Lua script or a MULTI may only touch keys of one hash slot. So every key that a
 * script or MULTI touches together carries one tag: the device id for the per-device keys (`{dev-17}`), the
 * JID for the per-JID keys (`{dev-17@example.com/agent}`), the exchange id for a correlation entry, the
 * instance for its reply channel. The tag is the thing the hot path is spread by, so load spreads over the
 * cluster as the fleet does. Keys used only by single-key commands stay untagged (the whole key is hashed).
 * RedisStore.script() checks every script call against this rule (slots.ts), on a single Redis too.
 * REDIS_KEY_PREFIX must not contain `{`: the first `{` of every key must be the tag's.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  // --- Correlation: exchanges in flight, and the bodies of chunked replies --------------------------------

  /**
   * String (JSON, expires at the deadline): one XMPP exchange in flight, with the instance that owns it; in
   * its device's hash slot, beside `exchangesTo`, so that both are written (and removed) by one script, and
   * found from a reply's sender and id.
   */
  exchange(jid: string, id: string): string {
    return this.key("corr", scopedToJid(jid, id));
  }

  /** Sorted set (ids by deadline): the exchanges in flight to one JID; a chunk from a stranger is refused. */
  exchangesTo(jid: string): string {
    return this.key("exchanges", jidTag(jid));
  }

  /** String: the instance receiving one chunked reply stream (XEP-0332 §3), claimed by the exchange's owner. */
  streamOwner(jid: string, streamId: string): string {
    return this.key("stream", scopedToJid(jid, streamId));
  }

  /** List: chunks of a stream that came before its owner claimed it, waiting there. */
  parkedChunks(jid: string, streamId: string): string {
    return this.key("parked", scopedToJid(jid, streamId));
  }

  /** String (counter): bytes of chunks parked for one JID's streams, bounded. */
  parkedBytes(jid: string): string {
    return this.key("parkedbytes", jidTag(jid));
  }

  /** Channel: replies and chunks forwarded to the instance that owns their exchange (tagged: one shard per instance). */
  replyChannel(instanceId: string): string {
    return this.key("reply", tag(instanceId));
  }

  /** Channel: instances whose XMPP component connection closed (the others resend what they may). */
  departures(): string {
    return this.key("departed");
  }

  // --- Limits -----------------------------------------------------------------------------------------------

  /** String (GCRA theoretical arrival time): one client's rate limit. */
  clientRate(client: string): string {
    return this.key("rate", client);
  }

  /** Sorted set (slot ids by expiry, on Redis's clock): the device's in-flight slots, all instances together. */
  deviceSlots(deviceId: string): string {
    return this.key("inflight", tag(deviceId));
  }

  /**
   * Channel: a slot of the device was freed; instances with requests waiting for it listen. Published from
   * inside DeviceLimiter's release script, so it carries deviceSlots()'s tag: a sharded publish (SPUBLISH)
   * from a script must be to a channel of the script's own slot.
   */
  slotFreed(deviceId: string): string {
    return this.key("slotfree", tag(deviceId));
  }

  // --- Delivery: idempotency, asynchronous requests, offline queue, shadow mode ---------------------------------

  /** String (JSON): one Idempotency-Key's state and outcome; the key is hashed (any length, any bytes). */
  idempotency(deviceId: string, keyHash: string): string {
    return this.key("idem", tag(deviceId), keyHash);
  }

  /** String (JSON): one `Prefer: respond-async` request's state, then its stored result. */
  asyncRequest(id: string): string {
    return this.key("request", id);
  }

  /** List: requests queued for an offline device (by JID), oldest first. */
  offlineQueue(jid: string): string {
    return this.key("queue", jidTag(jid));
  }

  /** String (counter): bytes queued for one device. */
  offlineQueueBytes(jid: string): string {
    return this.key("queuebytes", jidTag(jid));
  }

  /**
   * Sorted set (`<id>:<bytes>` by deadline): places taken in the queue's global bound, by every device. With
   * the byte count below it shares one tag of its own (one slot): the global bound is a step of its own,
   * apart from the per-JID lists (OfflineQueue).
   */
  offlineQueuedTotal(): string {
    return this.key("queued", "{total}");
  }

  /** String (counter): bytes queued for all devices together. */
  offlineQueuedBytesTotal(): string {
    return this.key("queuedbytes", "{total}");
  }

  /** String (expiring lock): one instance delivers a device's queue at a time. */
  offlineQueueDrain(jid: string): string {
    return this.key("draining", jidTag(jid));
  }

  /** Hash (device id → count): shadow comparisons that differed. */
  shadowMismatches(): string {
    return this.key("shadow", "mismatches");
  }

  // --- Presence ---------------------------------------------------------------------------------------------

  /**
   * Sorted set (JIDs by when their presence expires): devices whose presence is current. Split into
   * ONLINE_BUCKETS sets by a hash of the JID: it is written on every presence of every device, and as one key
   * it would be one hot hash slot (one cluster node) holding the whole fleet. Only single-key commands touch
   * a bucket, so buckets are untagged. This one is the JID's bucket.
   */
  online(jid: string): string {
    return this.onlineBucket(keySlot(normalizeJid(jid)) % ONLINE_BUCKETS);
  }

  /** Every bucket of online(), for counting. */
  onlineBuckets(): string[] {
    return Array.from({ length: ONLINE_BUCKETS }, (_, i) => this.onlineBucket(i));
  }

  /** String: a JID was seen online once (asynchronous requests to it may be queued while it is away). */
  seen(jid: string): string {
    return this.key("seen", jidTag(jid));
  }

  /** String: a JID announced itself unavailable. */
  offline(jid: string): string {
    return this.key("offline", jidTag(jid));
  }

  // --- Registry ---------------------------------------------------------------------------------------------

  /** String (JSON): one device's registry entry, by canonical id (or the id as stored before ids were canonical). */
  device(id: string): string {
    return this.key("device", tag(id));
  }

  /** Set: every registered device id. */
  devices(): string {
    return this.key("devices");
  }

  /**
   * Sorted set (every registered device id, each scored 0, so ordered by id): the listing's pages
   * (ZRANGEBYLEX, ZLEXCOUNT), where a set would need every id read and sorted per page. Written with
   * devices() and built from it at start (redis-registry.ts), so the earlier releases' registries need no migration.
   */
  deviceIds(): string {
    return this.key("deviceids");
  }

  /**
   * Hash (transport → count): registered devices by transport, added to by every registry write
   * (registry/transport-counts.ts); counted from the records when missing.
   */
  transportCounts(): string {
    return this.key("transportcounts");
  }

  /** String (device id): the index from a legacy address (`host:port`) to the device that registered it. */
  legacyIndex(address: string): string {
    return this.key("legacy", tag(address));
  }

  /**
   * Channel: registry changes. Every write of a registry entry publishes the device's id here, and every
   * instance drops that id from its registry cache (registry/registry-changes.ts). One channel for the whole
   * fleet (untagged: in Cluster mode one shard carries it): changes are rare, and an instance must hear them all.
   */
  registryChanges(): string {
    return this.key("registrychanged");
  }

  // --- Migration waves (README, "Migrating a fleet"; docs/admin-api.md) ----------------------------------------

  /**
   * Hash: one migration wave: its settings, state, claim and the counts every instance adds (HINCRBY). Tagged
   * by the wave id: the scripts that add counts and change the state (compare-and-set) touch this key alone.
   */
  wave(id: string): string {
    return this.key("wave", tag(id));
  }

  /** String (JSON `[[id, transport before], …]`): the wave's devices; the wave's tag. */
  waveDevices(id: string): string {
    return this.key("wavedevices", tag(id));
  }

  /** Sorted set (wave ids by creation time): every wave, for listing newest first. */
  waves(): string {
    return this.key("waves");
  }

  /** Set: the ids of the waves being watched, which every instance's evaluator reads. */
  wavesWatching(): string {
    return this.key("waveswatching");
  }

  /** Hash (`completed`, `rolled-back` → count): waves that ended, for the migration summary and the metrics. */
  waveCounts(): string {
    return this.key("wavecounts");
  }

  /** String (counter): the number of the last wave created (ids `w1`, `w2`, …). */
  waveSequence(): string {
    return this.key("waveseq");
  }

  private onlineBucket(bucket: number): string {
    return this.key("online", String(bucket));
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join(":");
  }
}

/**
 * One id scoped to one JID: a stream of one sender (XEP-0332 stream ids are chosen by the device), an exchange
 * with one device.
 */
function scopedToJid(jid: string, streamId: string): string {
  return `${jidTag(jid)}|${streamId}`;
}

function jidTag(jid: string): string {
  return tag(normalizeJid(jid));
}

/**
 * `{value}`, a hash tag. A JID (or an id) may itself contain `{` or `}`: the tag is then the text up to the
 * value's first `}`, still a function of the value alone, and every key of one JID is built here by this
 * function, so they still share one slot (different JIDs may share a slot too, which is harmless). Only an
 * EMPTY tag would break that, since Redis then hashes the whole key: so a value that is empty or starts with
 * `}` gets a `\` in front, and so does one that starts with `\`, which keeps keys of different values apart.
 */
export function tag(value: string): string {
  return value === "" || value.startsWith("}") || value.startsWith("\\") ? `{\\${value}}` : `{${value}}`;
}
