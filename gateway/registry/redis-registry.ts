import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";
import { TRANSPORTS, type DeviceRecord, type DeviceRegistry, type Transport } from "./device.js";
import type { IdRange, OrderedDevices } from "./device-listing.js";
import { canonicalDeviceId, canonicalOrAsGiven } from "./device-id.js";
import { TransportCounts } from "./transport-counts.js";
import { normalizeLegacyAddress } from "./validate.js";

/** A put whose legacyAddress another device already owns (409 GW_CONFLICT, field `legacyAddress`). */
export class LegacyAddressConflict extends GatewayError {
  constructor(
    readonly legacyAddress: string,
    readonly owner: string,
  ) {
    super("GW_CONFLICT", { field: "legacyAddress", message: `legacyAddress ${legacyAddress} already belongs to device ${owner}` });
  }
}

/** How upsert() writes an entry. */
export interface WriteOptions {
  /**
   * A change of an entry that exists (read, changed, written back): refused with GW_UNKNOWN_DEVICE, and
   * nothing written, when the entry was deleted meanwhile.
   */
  existing?: boolean;
}

/** The registry as the admin API and the forward proxy use it: the DeviceRegistry contract, its ordered ids, and two more. */
export interface DeviceStore extends DeviceRegistry, OrderedDevices {
  /** put(), answering the record as stored (with its updatedAt). Throws LegacyAddressConflict. */
  upsert(record: DeviceRecord, opts?: WriteOptions): Promise<{ created: boolean; record: DeviceRecord }>;
  /** The device that registered this `host:port` (any spelling normalizeLegacyAddress accepts). */
  findByLegacyAddress(hostPort: string): Promise<DeviceRecord | undefined>;
}

/**
 * Takes the legacy-address index for a device: sets it to ARGV[1] when it is free, already that device's, or
 * still held by ARGV[2] (a compare-and-set from an owner found stale; "" for none). KEYS: the index entry.
 * Answers "" when taken, else the device that holds it.
 */
const CLAIM_SCRIPT = `
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] and owner ~= ARGV[2] then return owner end
redis.call('SET', KEYS[1], ARGV[1])
return ''`;

/** Moves the index entry from ARGV[1] to ARGV[2] (or frees it, when ""), if it still names ARGV[1]. KEYS: the index entry. */
const SWAP_SCRIPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1`;

/**
 * Puts a record back as it was before a put that lost its address (ARGV[2], or deleted when ""), unless it
 * changed since (ARGV[1] is what the put wrote). KEYS: the record. Answers 1 when it was deleted, 2 when put
 * back, 0 when it had changed since (the put's record was replaced by another write: that one stands).
 */
const UNDO_SCRIPT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('SET', KEYS[1], ARGV[2])
return 2`;

/** Reads of the registry (list) are sent in batches of this many GETs (auto-pipelined: one write each). */
const LIST_BATCH = 500;

/** Ids added to the ordered index per ZADD while it is built from the id set. */
const INDEX_BATCH = 1000;

/**
 * The device registry on Redis (README, "Admin API"), shared by every instance. Every write of an entry is
 * announced on the registry channel, after which each instance's registry cache (cached-registry.ts) reads
 * it again. Keys: `{prefix}device:{id}` (the record as JSON, tagged by device), `{prefix}devices` (the set of
 * ids), `{prefix}deviceids` (the same ids as a sorted set, ordered: the listing's pages),
 * `{prefix}transportcounts` (the entries by transport: transport-counts.ts), `{prefix}legacy:{host:port}` (the
 * id owning a legacy address, tagged by address). Every Redis failure surfaces as GW_STORE_UNAVAILABLE
 * (RedisStore.run).
 *
 * They are different hash slots, so a change is several single-slot steps, in an order whose every
 * intermediate state (an instance dying between two steps) is one that readers already tolerate:
 * - the record is the truth; the index is authoritative only when the record it names agrees (lookups by
 *   address check that), and an index entry whose device's record does not name the address (left by a
 *   put or delete cut short) is stale: any device may take it over;
 * - put: the record is written first, then the address claimed (one script on the index: two devices
 *   racing for one address cannot both win; the loser puts its record back and gets 409), then the
 *   device's previous address freed. Cut short, the record may name an address the index does not give it
 *   (found by id, not by address, until the put is repeated) or an old address stays indexed (stale);
 * - delete: the record first, then the id set, then the index (stale meanwhile);
 * - the id set and the ordered ids: written together in one step (two commands sent at once), after the
 *   record; list() and the pages skip ids whose record is gone. An id in one and not the other (a step cut
 *   short between the two commands) is what a put or delete cut short before that step leaves too: the
 *   next put or delete of the device sets both right, and at start the ordered ids get every id of the set
 *   (indexIds(), which also fills them in for a registry written before they existed).
 */
export class RedisDeviceRegistry implements DeviceStore {
  private readonly claimScript: (...args: Array<string | number>) => Promise<string>;
  private readonly swapScript: (...args: Array<string | number>) => Promise<number>;
  private readonly undoScript: (...args: Array<string | number>) => Promise<number>;

  private readonly now: () => Date;
  private readonly onChanged: (id: string) => void;
  /** Registered devices by transport (`gateway_devices`, `GET /admin/migration`), kept by every write. */
  readonly counts: TransportCounts;
  /** indexIds() once done (or under way) on this instance; cleared when it fails, so the next page tries again. */
  private indexed: Promise<number> | undefined;

  /**
   * `onChanged`: called at once after every write of an entry (also one that failed partway), before every
   * instance is told on the registry channel (this instance's registry cache drops the device there).
   */
  constructor(
    private readonly redis: RedisStore,
    opts: { now?: () => Date; onChanged?: (id: string) => void } = {},
  ) {
    this.now = opts.now ?? (() => new Date());
    this.onChanged = opts.onChanged ?? (() => undefined);
    this.counts = new TransportCounts(redis, () => this.storedTransports());
    this.claimScript = redis.script<string>("registryClaimAddress", 1, CLAIM_SCRIPT);
    this.swapScript = redis.script<number>("registrySwapAddress", 1, SWAP_SCRIPT);
    this.undoScript = redis.script<number>("registryUndoPut", 1, UNDO_SCRIPT);
  }

  /**
   * Entries whose id has capitals (written before ids were canonical) moved to their lower-case id; run at
   * start. Answers the ids renamed and those dropped for an existing lower-case entry. When an entry by the
   * lower-case id exists already, that one is what every lookup found all along: the old spelling is dropped.
   * Steps, each safe to repeat (a start cut short repeats them at the next start): the new record (SET NX),
   * its id, the index moved to the id whose record names the address, then the old record and its id.
   */
  async canonicalizeIds(): Promise<{ renamed: string[]; dropped: string[] }> {
    const ids = await this.redis.run((c) => c.smembers(this.setKey()));
    const renamed: string[] = [];
    const dropped: string[] = [];
    for (const id of ids.sort(byCodePoint)) {
      const canonicalId = canonicalDeviceId(id);
      if (canonicalId === undefined || canonicalId === id) continue;
      const outcome = await this.changing(canonicalId, () => this.canonicalize(id, canonicalId));
      if (outcome === "renamed") renamed.push(id);
      else if (outcome === "dropped") dropped.push(id);
    }
    return { renamed, dropped };
  }

  private async canonicalize(oldId: string, newId: string): Promise<"renamed" | "dropped" | "gone"> {
    const oldKey = this.redis.keys.device(oldId);
    const json = await this.redis.run((c) => c.get(oldKey));
    if (json === null) {
      await this.removeId(oldId);
      return "gone";
    }
    const rec = parseRecord(json);
    if (rec === undefined) return "gone";
    const moved = JSON.stringify({ ...rec, id: newId });
    const written = await this.redis.run((c) => c.set(this.recordKey(newId), moved, "NX"));
    const outcome = written === "OK" ? "renamed" : "dropped";
    // Also when dropped: a rename cut short before this step finds the new record there already.
    await this.addId(newId);
    const address = rec.legacyAddress;
    if (typeof address === "string") {
      // The index follows whichever record names the address now: the moved one, or the one that was there.
      const kept = outcome === "renamed" ? rec : await this.get(newId);
      await this.swapScript(this.redis.keys.legacyIndex(address), oldId, kept?.legacyAddress === address ? newId : "");
    }
    await this.redis.run((c) => c.del(oldKey));
    await this.removeId(oldId);
    // Renamed: the same device, counted once before and after; dropped: one record fewer.
    if (outcome === "dropped") await this.counts.changed(transportOf(json), undefined);
    return outcome;
  }

  async get(id: string): Promise<DeviceRecord | undefined> {
    const json = await this.redis.run((c) => c.get(this.recordKey(id)));
    return json === null ? undefined : decode(json, id);
  }

  async put(record: DeviceRecord): Promise<boolean> {
    return (await this.upsert(record)).created;
  }

  async upsert(record: DeviceRecord, opts: WriteOptions = {}): Promise<{ created: boolean; record: DeviceRecord }> {
    return this.changing(canonicalOrAsGiven(record.id), () => this.write(record, opts.existing === true));
  }

  private async write(record: DeviceRecord, existing: boolean): Promise<{ created: boolean; record: DeviceRecord }> {
    const stored: DeviceRecord = { ...record, id: canonicalOrAsGiven(record.id), updatedAt: this.now().toISOString() };
    let address = "";
    if (stored.legacyAddress !== undefined) {
      const normalized = normalizeLegacyAddress(stored.legacyAddress);
      if (normalized === undefined) {
        throw new GatewayError("GW_INVALID_FIELD", { field: "legacyAddress", message: "legacyAddress must be host:port" });
      }
      stored.legacyAddress = address = normalized;
    }
    const id = stored.id;
    if (address !== "") {
      // Most conflicts are refused here, before the record is touched.
      const owner = await this.redis.run((c) => c.get(this.redis.keys.legacyIndex(address)));
      if (owner !== null && owner !== id && (await this.holds(owner, address))) throw new LegacyAddressConflict(address, owner);
    }
    const json = JSON.stringify(stored);
    const recordKey = this.recordKey(id);
    // SET … XX for a change of an entry read before (a PATCH, a bulk move, a wave, an agent's address): an
    // entry deleted since stays deleted rather than coming back as the change's copy.
    const old = await this.redis.run((c) => (existing ? c.set(recordKey, json, "XX", "GET") : c.set(recordKey, json, "GET")));
    if (existing && old === null) throw new GatewayError("GW_UNKNOWN_DEVICE", { message: `no device ${id} in the registry` });
    await this.addId(id);
    if (address !== "") {
      const owner = await this.claim(id, address);
      if (owner !== undefined) {
        // Lost a race for the address: the record goes back to what it was.
        const undone = await this.undoScript(recordKey, json, old ?? "");
        if (undone === 1) await this.unlist(id);
        // Replaced meanwhile by another write, which counted from this one's record: this one counts too.
        if (undone === 0) await this.counts.changed(transportOf(old), stored.transport);
        throw new LegacyAddressConflict(address, owner);
      }
    }
    await this.counts.changed(transportOf(old), stored.transport);
    const before = old === null ? undefined : parseRecord(old)?.legacyAddress;
    if (typeof before === "string" && before !== address) await this.swapScript(this.redis.keys.legacyIndex(before), id, "");
    return { created: old === null, record: stored };
  }

  /**
   * Claims the address's index entry for `id`; answers the device that owns it instead, if any. An entry
   * whose device's record does not name the address is stale and taken over (compare-and-set); if that
   * device's record names it after all once taken (its own put was between our two reads), it is handed back.
   */
  private async claim(id: string, address: string): Promise<string | undefined> {
    const index = this.redis.keys.legacyIndex(address);
    const owner = await this.claimScript(index, id, "");
    if (owner === "") return undefined;
    if (await this.holds(owner, address)) return owner;
    const now = await this.claimScript(index, id, owner);
    if (now !== "") return now;
    if (!(await this.holds(owner, address))) return undefined;
    await this.swapScript(index, id, owner);
    return owner;
  }

  /** Whether the device's record names this legacy address. */
  private async holds(id: string, address: string): Promise<boolean> {
    const json = await this.redis.run((c) => c.get(this.recordKey(id)));
    return json !== null && parseRecord(json)?.legacyAddress === address;
  }

  async delete(id: string): Promise<boolean> {
    return this.changing(canonicalOrAsGiven(id), () => this.remove(id));
  }

  private async remove(id: string): Promise<boolean> {
    const canonical = canonicalOrAsGiven(id);
    const old = await this.redis.run((c) => c.getdel(this.recordKey(id)));
    await this.unlist(canonical);
    if (old === null) return false;
    await this.counts.changed(transportOf(old), undefined);
    const address = parseRecord(old)?.legacyAddress;
    if (typeof address === "string") await this.swapScript(this.redis.keys.legacyIndex(address), canonical, "");
    return true;
  }

  async list(): Promise<DeviceRecord[]> {
    const records: DeviceRecord[] = [];
    await this.eachStored((json, id) => records.push(decode(json, id)));
    return records;
  }

  /** The transport of every stored record (none for one that cannot be read): the first count of the counts. */
  private async storedTransports(): Promise<Array<Transport | undefined>> {
    const transports: Array<Transport | undefined> = [];
    await this.eachStored((json) => transports.push(transportOf(json)));
    return transports;
  }

  /** Every stored record as it is, in id order, read in batches. */
  private async eachStored(each: (json: string, id: string) => void): Promise<void> {
    const ids = (await this.redis.run((c) => c.smembers(this.setKey()))).sort(byCodePoint);
    for (let i = 0; i < ids.length; i += LIST_BATCH) {
      const batch = ids.slice(i, i + LIST_BATCH);
      // One GET per record (no MGET: the records are in different hash slots); sent together.
      const values = await this.redis.run((c) => Promise.all(batch.map((id) => c.get(this.recordKey(id)))));
      values.forEach((json, j) => {
        // No record: deleted between SMEMBERS and GET, or a put or delete cut short. Skip it.
        if (json !== null) each(json, batch[j] as string);
      });
    }
  }

  /**
   * Up to `count` ids of the ordered index in `range`, in order (ZRANGEBYLEX: Redis compares them byte by
   * byte, which for ids, ASCII only, is the order of list()). Builds the index first if this instance has
   * not yet (indexIds()).
   */
  async idsIn(range: IdRange, count: number): Promise<string[]> {
    await this.ensureIndexed();
    const [min, max] = lexRange(range);
    if (min === undefined) return [];
    return this.redis.run((c) => c.zrangebylex(this.indexKey(), min, max, "LIMIT", 0, count));
  }

  /** How many ids of the ordered index are in `range` (ZLEXCOUNT): ids whose record is gone count too. */
  async countIn(range: IdRange): Promise<number> {
    await this.ensureIndexed();
    const [min, max] = lexRange(range);
    if (min === undefined) return 0;
    return this.redis.run((c) => c.zlexcount(this.indexKey(), min, max));
  }

  /** The records of `ids`, in their order (undefined: none, e.g. deleted since the ids were read), read together. */
  async getMany(ids: readonly string[]): Promise<Array<DeviceRecord | undefined>> {
    // One GET per record (no MGET: the records are in different hash slots); sent together.
    const values = await this.redis.run((c) => Promise.all(ids.map((id) => c.get(this.recordKey(id)))));
    return values.map((json, i) => (json === null ? undefined : decode(json, ids[i] as string)));
  }

  /**
   * Adds every id of the id set to the ordered index (ZADD of ids already there changes nothing); answers
   * how many were missing. Run at start and before this instance's first page: a registry written before the
   * index existed (or a step cut short) gets its ids ordered. An id the set lost while the index kept it (a
   * delete cut short) stays: pages skip ids without a record, and its next put or delete sets it right.
   */
  async indexIds(): Promise<number> {
    const ids = await this.redis.run((c) => c.smembers(this.setKey()));
    let added = 0;
    for (let i = 0; i < ids.length; i += INDEX_BATCH) {
      const members = ids.slice(i, i + INDEX_BATCH).flatMap((id) => [0, id]);
      added += await this.redis.run((c) => c.zadd(this.indexKey(), ...members));
    }
    return added;
  }

  /** indexIds(), once per instance (again after a failure). */
  ensureIndexed(): Promise<number> {
    this.indexed ??= this.indexIds().catch((err: unknown) => {
      this.indexed = undefined;
      throw err;
    });
    return this.indexed;
  }

  async findByLegacyAddress(hostPort: string): Promise<DeviceRecord | undefined> {
    const address = normalizeLegacyAddress(hostPort);
    if (address === undefined) return undefined;
    const id = await this.redis.run((c) => c.get(this.redis.keys.legacyIndex(address)));
    if (id === null) return undefined;
    const record = await this.get(id);
    // Changed between the two reads, or a stale entry: the index no longer speaks for this record.
    return record?.legacyAddress === address ? record : undefined;
  }

  /**
   * Runs a write of the device's entry, then tells of it: this instance at once (onChanged), every instance
   * on the registry channel (registry-changes.ts), also when the write failed partway (it may have changed
   * the record before it failed, or changed it and put it back, as a put that lost its address does: an
   * instance may have read it meanwhile). Answered once the notice is published: a write whose notice could
   * not be published fails (GW_STORE_UNAVAILABLE) though it was made, and the instances that missed it read
   * the entry again within GATEWAY_REGISTRY_CACHE_MS.
   */
  private async changing<T>(id: string, write: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await write();
    } catch (err) {
      this.onChanged(id);
      await this.redis.publish(this.redis.keys.registryChanges(), id).catch(() => undefined);
      throw err;
    }
    this.onChanged(id);
    await this.redis.publish(this.redis.keys.registryChanges(), id);
    return result;
  }

  /** Ids are looked up in any case, by their canonical spelling (README "Device ids"). */
  private recordKey(id: string): string {
    return this.redis.keys.device(canonicalOrAsGiven(id));
  }

  private setKey(): string {
    return this.redis.keys.devices();
  }

  private indexKey(): string {
    return this.redis.keys.deviceIds();
  }

  /** The id into the id set and the ordered index: one step, both commands sent at once (different slots). */
  private async addId(id: string): Promise<void> {
    await this.redis.run((c) => Promise.all([c.sadd(this.setKey(), id), c.zadd(this.indexKey(), 0, id)]));
  }

  /** The id out of both, as addId(). */
  private async removeId(id: string): Promise<void> {
    await this.redis.run((c) => Promise.all([c.srem(this.setKey(), id), c.zrem(this.indexKey(), id)]));
  }

  /**
   * The id out of both after its record was deleted, and back in if a record is there again by then. A put
   * of the same id from another instance writes the record and then adds the id; landing between this
   * delete's record and id steps, its id would be removed and its record left out of list() for good. Read
   * after the removal, the record decides: whatever the order of the two writers' steps, a record that
   * exists ends listed (an id listed without a record, the other way round, is skipped by every reader).
   */
  private async unlist(id: string): Promise<void> {
    await this.removeId(id);
    if ((await this.redis.run((c) => c.exists(this.recordKey(id)))) === 1) await this.addId(id);
  }
}

/**
 * ZRANGEBYLEX bounds of `range` (`(` excludes, `[` includes, `-`/`+` the ends); min undefined when the
 * range is empty (a cursor past the prefix's ids).
 */
export function lexRange(range: IdRange): [min: string | undefined, max: string] {
  const { after, prefix } = range;
  // The first string after every one that starts with the prefix: its last character moved up by one (ids
  // and prefixes are ASCII below DEL, so that is still one character).
  const end =
    prefix === undefined || prefix === "" ? undefined : prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const max = end === undefined ? "+" : `(${end}`;
  if (after !== undefined && end !== undefined && after >= end) return [undefined, max];
  if (after !== undefined && (prefix === undefined || after >= prefix)) return [`(${after}`, max];
  return [prefix === undefined || prefix === "" ? "-" : `[${prefix}`, max];
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The transport a stored record names, if it is one (none for no record, or one that cannot be read). */
function transportOf(json: string | null): Transport | undefined {
  if (json === null) return undefined;
  const transport = parseRecord(json)?.transport;
  return TRANSPORTS.find((t) => t === transport);
}

/** A stored record as far as it can be read (undefined when it is not a JSON object). */
function parseRecord(json: string): (Partial<DeviceRecord> & Record<string, unknown>) | undefined {
  try {
    const rec: unknown = JSON.parse(json);
    return typeof rec === "object" && rec !== null && !Array.isArray(rec)
      ? (rec as Partial<DeviceRecord> & Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function decode(json: string, id: string): DeviceRecord {
  try {
    return JSON.parse(json) as DeviceRecord;
  } catch (err) {
    throw new GatewayError("GW_INTERNAL", { message: `registry entry of ${id} is not valid JSON`, cause: err });
  }
}
