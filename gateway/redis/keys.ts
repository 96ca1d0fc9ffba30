import { normalizeJid } from "../../lib/xmpp/jid.js";

/**
 * Every Redis key and pub/sub channel name the gateway uses, in one place (docs/architecture.md, "Redis").
 * Each starts with REDIS_KEY_PREFIX, so deployments (or test suites) can share one Redis. Per-device keys take
 * the canonical (lower-case) device id, per-JID keys the normalized JID (lib/xmpp/jid.ts), so that two
 * spellings of one device never get two keys.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  // --- Correlation: exchanges in flight, and the bodies of chunked replies --------------------------------

  /** String (JSON, expires at the deadline): one XMPP exchange in flight, with the instance that owns it. */
  exchange(id: string): string {
    return this.key("corr", id);
  }

  /** Sorted set (ids by deadline): the exchanges in flight to one JID; a chunk from a stranger is refused. */
  exchangesTo(jid: string): string {
    return this.key("exchanges", normalizeJid(jid));
  }

  /** String: the instance receiving one chunked reply stream (XEP-0332 §3), claimed by the exchange's owner. */
  streamOwner(jid: string, streamId: string): string {
    return this.key("stream", streamKey(jid, streamId));
  }

  /** List: chunks of a stream that came before its owner claimed it, waiting there. */
  parkedChunks(jid: string, streamId: string): string {
    return this.key("parked", streamKey(jid, streamId));
  }

  /** String (counter): bytes of chunks parked for one JID's streams, bounded. */
  parkedBytes(jid: string): string {
    return this.key("parkedbytes", normalizeJid(jid));
  }

  /** Channel: replies and chunks forwarded to the instance that owns their exchange. */
  replyChannel(instanceId: string): string {
    return this.key("reply", instanceId);
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
    return this.key("inflight", deviceId);
  }

  /** Channel: a slot of the device was freed; instances with requests waiting for it listen. */
  slotFreed(deviceId: string): string {
    return this.key("slotfree", deviceId);
  }

  // --- Delivery: idempotency, asynchronous requests, offline queue, shadow mode ---------------------------------

  /** String (JSON): one Idempotency-Key's state and outcome; the key is hashed (any length, any bytes). */
  idempotency(deviceId: string, keyHash: string): string {
    return this.key("idem", deviceId, keyHash);
  }

  /** String (JSON): one `Prefer: respond-async` request's state, then its stored result. */
  asyncRequest(id: string): string {
    return this.key("request", id);
  }

  /** List: requests queued for an offline device (by JID), oldest first. */
  offlineQueue(jid: string): string {
    return this.key("queue", normalizeJid(jid));
  }

  /** String (counter): bytes queued for one device. */
  offlineQueueBytes(jid: string): string {
    return this.key("queuebytes", normalizeJid(jid));
  }

  /** String (counter): requests queued for all devices together. */
  offlineQueuedTotal(): string {
    return this.key("queued");
  }

  /** String (counter): bytes queued for all devices together. */
  offlineQueuedBytesTotal(): string {
    return this.key("queuedbytes");
  }

  /** String (expiring lock): one instance delivers a device's queue at a time. */
  offlineQueueDrain(jid: string): string {
    return this.key("draining", normalizeJid(jid));
  }

  /** Hash (device id → count): shadow comparisons that differed. */
  shadowMismatches(): string {
    return this.key("shadow", "mismatches");
  }

  // --- Presence ---------------------------------------------------------------------------------------------

  /** Sorted set (JIDs by last presence): devices whose presence is current. */
  online(): string {
    return this.key("online");
  }

  /** String: a JID was seen online once (asynchronous requests to it may be queued while it is away). */
  seen(jid: string): string {
    return this.key("seen", normalizeJid(jid));
  }

  /** String: a JID announced itself unavailable. */
  offline(jid: string): string {
    return this.key("offline", normalizeJid(jid));
  }

  // --- Registry ---------------------------------------------------------------------------------------------

  /** String (JSON): one device's registry entry, by canonical id (or the id as stored before ids were canonical). */
  device(id: string): string {
    return this.key("device", id);
  }

  /** Set: every registered device id. */
  devices(): string {
    return this.key("devices");
  }

  /** Prefix of the index from a legacy address (`host:port`) to its device: `legacy:{address}`. */
  legacyIndexPrefix(): string {
    return this.key("legacy", "");
  }

  private key(...parts: string[]): string {
    return this.prefix + parts.join(":");
  }
}

/** One stream of one sender: XEP-0332 stream ids are chosen by the device, so they are scoped to its JID. */
function streamKey(jid: string, streamId: string): string {
  return `${normalizeJid(jid)}|${streamId}`;
}
