import { canonicalOrAsGiven } from "./device-id.js";
import type { DeviceRecord, DeviceRegistry } from "./device.js";

export interface RegistryCacheOptions {
  /** GATEWAY_REGISTRY_CACHE_MS: an answer older than this is read again, whatever else happened; 0: no cache. */
  maxAgeMs: number;
  /** Answers kept at most (REGISTRY_CACHE_MAX_ENTRIES); the oldest go first. */
  maxEntries: number;
}

/** Lookups so far: answered from memory or by a read already under way (`hit`), read from Redis (`miss`), read because the cache was closed (`bypass`). */
export interface RegistryCacheLookups {
  hit: number;
  miss: number;
  bypass: number;
}

interface Entry {
  /** undefined: the device has no entry (most devices on DEFAULT_TRANSPORT=xmpp have none). */
  readonly record: DeviceRecord | undefined;
  /** When the read that answered it was sent (`now()`): the answer is at least this fresh. */
  readonly sentAt: number;
}

interface Read {
  readonly answer: Promise<DeviceRecord | undefined>;
  /** Cleared by a change of the device (or of all) while the read is under way: its answer may predate the change. */
  keep: boolean;
}

/**
 * One instance's memory of registry answers (`get`), so that a device request does not cost a Redis round
 * trip (README, "Admin API"). Only as good as what tells it of changes (RegistryChangeFeed): it is open
 * only while every change is heard, and answers are kept only from reads sent while it was open.
 *
 * - An answer is dropped when its device changes (`drop`, from this instance's own writes at once and from
 *   the other instances' change notices), and everything when the notices may have been missed (`close`).
 * - Whatever else happened, an answer is read again once it is `maxAgeMs` old (counted from when its read
 *   was sent): that bounds writes no notice told of (a hand edit in redis-cli, a notice lost with its
 *   connection before the instance noticed).
 * - A read under way when its device changes (or everything is dropped) answers its callers but is not
 *   kept: Redis may have answered it before the change while the notice came first.
 * - "No entry" is an answer too, kept the same way: a device created elsewhere is a change like any other.
 * - Concurrent lookups of one device share one read; a lookup after a change never joins a read sent before it.
 * - At most `maxEntries` answers, the oldest dropped first, so that requests for random ids cannot grow the
 *   memory without bound (each costs a read, as without the cache). Absent entries are not bounded apart:
 *   on DEFAULT_TRANSPORT=xmpp they are what most lookups answer.
 */
export class CachedRegistry implements Pick<DeviceRegistry, "get"> {
  private readonly entries = new Map<string, Entry>();
  private readonly reads = new Map<string, Read>();
  private opened = false;
  readonly lookups: RegistryCacheLookups = { hit: 0, miss: 0, bypass: 0 };

  constructor(
    private readonly source: Pick<DeviceRegistry, "get">,
    private readonly opts: RegistryCacheOptions,
    /** A monotonic clock in milliseconds (not the wall clock, which may jump). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Whether answers are kept and served (maxAgeMs > 0, and the change feed hears every change). */
  get isOpen(): boolean {
    return this.opened;
  }

  /** Answers kept now. */
  get size(): number {
    return this.entries.size;
  }

  async get(id: string): Promise<DeviceRecord | undefined> {
    const key = canonicalOrAsGiven(id);
    if (!this.opened) {
      this.lookups.bypass++;
      return this.source.get(key);
    }
    const now = this.now();
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      if (now - entry.sentAt < this.opts.maxAgeMs) {
        this.lookups.hit++;
        return entry.record;
      }
      this.entries.delete(key);
    }
    const under = this.reads.get(key);
    if (under !== undefined) {
      this.lookups.hit++;
      return under.answer;
    }
    this.lookups.miss++;
    return this.read(key, now);
  }

  /** The device's entry changed (or may have): its answer is dropped, and a read of it under way is not kept. */
  drop(id: string): void {
    const key = canonicalOrAsGiven(id);
    this.entries.delete(key);
    const read = this.reads.get(key);
    if (read !== undefined) {
      read.keep = false;
      this.reads.delete(key);
    }
  }

  /** Any entry may have changed: everything is dropped. */
  dropAll(): void {
    this.entries.clear();
    for (const read of this.reads.values()) read.keep = false;
    this.reads.clear();
  }

  /** Every change is heard from now on: answers are kept (from reads sent from now on), unless maxAgeMs is 0. */
  open(): void {
    this.dropAll();
    this.opened = this.opts.maxAgeMs > 0;
  }

  /** Changes may go unheard: every lookup reads Redis, and nothing is kept. */
  close(): void {
    this.opened = false;
    this.dropAll();
  }

  private read(key: string, sentAt: number): Promise<DeviceRecord | undefined> {
    const read: Read = {
      keep: true,
      answer: this.source.get(key).then(
        (record) => {
          this.settled(key, read);
          // Frozen: every later lookup gets this very object.
          if (read.keep && this.opened) this.keep(key, { record: record && Object.freeze(record), sentAt });
          return record;
        },
        (err: unknown) => {
          this.settled(key, read);
          throw err;
        },
      ),
    };
    this.reads.set(key, read);
    return read.answer;
  }

  private settled(key: string, read: Read): void {
    if (this.reads.get(key) === read) this.reads.delete(key);
  }

  private keep(key: string, entry: Entry): void {
    this.entries.delete(key);
    if (this.entries.size >= this.opts.maxEntries) this.makeRoom();
    this.entries.set(key, entry);
  }

  /** Drops the expired answers at the front (the oldest kept), and the oldest one if none had expired. */
  private makeRoom(): void {
    const now = this.now();
    const before = this.entries.size;
    for (const [key, entry] of this.entries) {
      if (now - entry.sentAt < this.opts.maxAgeMs) break;
      this.entries.delete(key);
    }
    if (this.entries.size < before) return;
    const oldest = this.entries.keys().next();
    if (oldest.done !== true) this.entries.delete(oldest.value);
  }
}
