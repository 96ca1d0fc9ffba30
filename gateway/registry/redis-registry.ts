import { GatewayError } from "../errors.js";
import type { RedisStore } from "../redis/client.js";
import type { DeviceRecord, DeviceRegistry } from "./device.js";
import { canonicalDeviceId, canonicalOrAsGiven } from "./device-id.js";
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

/** The registry as the admin API and the forward proxy use it: the DeviceRegistry contract and two more. */
export interface DeviceStore extends DeviceRegistry {
  /** put(), answering the record as stored (with its updatedAt). Throws LegacyAddressConflict. */
  upsert(record: DeviceRecord): Promise<{ created: boolean; record: DeviceRecord }>;
  /** The device that registered this `host:port` (any spelling normalizeLegacyAddress accepts). */
  findByLegacyAddress(hostPort: string): Promise<DeviceRecord | undefined>;
}

/**
 * Writes one entry atomically: the record, the id set and the legacy-address index change together or not
 * at all, and the ownership check of the address happens in the same step, so two instances registering
 * one address at once cannot both win. (A script rather than MULTI/EXEC: MULTI cannot make a write depend
 * on a read, and WATCH is unsafe on the shared, auto-pipelined connection.)
 *
 * KEYS: record, id set. ARGV: id, JSON, new legacy address or "", legacy index key prefix.
 * Answers {"conflict", owner} | {"created"} | {"replaced"}.
 */
const PUT_SCRIPT = `
local id, json, address, indexPrefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if address ~= '' then
  local owner = redis.call('GET', indexPrefix .. address)
  if owner and owner ~= id then return {'conflict', owner} end
end
local old = redis.call('GET', KEYS[1])
if old then
  local ok, rec = pcall(cjson.decode, old)
  local before = ok and type(rec) == 'table' and rec.legacyAddress
  if type(before) == 'string' and before ~= address and redis.call('GET', indexPrefix .. before) == id then
    redis.call('DEL', indexPrefix .. before)
  end
end
redis.call('SET', KEYS[1], json)
redis.call('SADD', KEYS[2], id)
if address ~= '' then redis.call('SET', indexPrefix .. address, id) end
if old then return {'replaced'} end
return {'created'}
`;

/** KEYS: record, id set. ARGV: id, legacy index key prefix. Answers 1 when there was an entry, else 0. */
const DELETE_SCRIPT = `
local id, indexPrefix = ARGV[1], ARGV[2]
local old = redis.call('GET', KEYS[1])
redis.call('SREM', KEYS[2], id)
if not old then return 0 end
local ok, rec = pcall(cjson.decode, old)
local address = ok and type(rec) == 'table' and rec.legacyAddress
if type(address) == 'string' and redis.call('GET', indexPrefix .. address) == id then
  redis.call('DEL', indexPrefix .. address)
end
redis.call('DEL', KEYS[1])
return 1
`;

/**
 * Moves an entry written before ids were canonical (README "Device ids") to its lower-case id, index and
 * id set included, in one step. When an entry by the lower-case id exists already, that one is what every
 * lookup found all along: the old spelling is dropped.
 *
 * KEYS: old record, new record, id set. ARGV: old id, new id, legacy index key prefix.
 * Answers "renamed", "dropped" or "gone".
 */
const CANONICALIZE_SCRIPT = `
local json = redis.call('GET', KEYS[1])
if not json then
  redis.call('SREM', KEYS[3], ARGV[1])
  return 'gone'
end
local ok, rec = pcall(cjson.decode, json)
if not ok or type(rec) ~= 'table' then return 'gone' end
local address = rec.legacyAddress
local indexed = type(address) == 'string' and redis.call('GET', ARGV[3] .. address) == ARGV[1]
local outcome = 'dropped'
if redis.call('EXISTS', KEYS[2]) == 0 then
  rec.id = ARGV[2]
  redis.call('SET', KEYS[2], cjson.encode(rec))
  redis.call('SADD', KEYS[3], ARGV[2])
  if indexed then redis.call('SET', ARGV[3] .. address, ARGV[2]) end
  outcome = 'renamed'
elseif indexed then
  redis.call('DEL', ARGV[3] .. address)
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[1])
return outcome
`;

const MGET_BATCH = 500;

/**
 * The device registry on Redis (README, "Admin API"), shared by every instance and read on every request, so a
 * change is seen everywhere on the next request. Keys: `{prefix}device:{id}` (the record as JSON),
 * `{prefix}devices` (the set of ids), `{prefix}legacy:{host:port}` (the id owning a legacy address).
 * Every Redis failure surfaces as GW_STORE_UNAVAILABLE (RedisStore.run).
 */
export class RedisDeviceRegistry implements DeviceStore {
  private readonly putScript: (...args: Array<string | number>) => Promise<unknown>;
  private readonly deleteScript: (...args: Array<string | number>) => Promise<unknown>;
  private readonly canonicalizeScript: (...args: Array<string | number>) => Promise<string>;

  constructor(
    private readonly redis: RedisStore,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.putScript = redis.script<unknown>("registryPut", 2, PUT_SCRIPT);
    this.deleteScript = redis.script<unknown>("registryDelete", 2, DELETE_SCRIPT);
    this.canonicalizeScript = redis.script<string>("registryCanonicalize", 3, CANONICALIZE_SCRIPT);
  }

  /**
   * Entries whose id has capitals (written before ids were canonical) moved to their lower-case id; run at
   * start. Answers the ids renamed and those dropped for an existing lower-case entry.
   */
  async canonicalizeIds(): Promise<{ renamed: string[]; dropped: string[] }> {
    const ids = await this.redis.run((c) => c.smembers(this.setKey()));
    const renamed: string[] = [];
    const dropped: string[] = [];
    for (const id of ids.sort(byCodePoint)) {
      const canonicalId = canonicalDeviceId(id);
      if (canonicalId === undefined || canonicalId === id) continue;
      const outcome = await this.canonicalizeScript(
        this.redis.keys.device(id),
        this.recordKey(canonicalId),
        this.setKey(),
        id,
        canonicalId,
        this.indexPrefix(),
      );
      if (outcome === "renamed") renamed.push(id);
      else if (outcome === "dropped") dropped.push(id);
    }
    return { renamed, dropped };
  }

  async get(id: string): Promise<DeviceRecord | undefined> {
    const json = await this.redis.run((c) => c.get(this.recordKey(id)));
    return json === null ? undefined : decode(json, id);
  }

  async put(record: DeviceRecord): Promise<boolean> {
    return (await this.upsert(record)).created;
  }

  async upsert(record: DeviceRecord): Promise<{ created: boolean; record: DeviceRecord }> {
    const stored: DeviceRecord = { ...record, id: canonicalOrAsGiven(record.id), updatedAt: this.now().toISOString() };
    let address = "";
    if (stored.legacyAddress !== undefined) {
      const normalized = normalizeLegacyAddress(stored.legacyAddress);
      if (normalized === undefined) {
        throw new GatewayError("GW_INVALID_FIELD", { field: "legacyAddress", message: "legacyAddress must be host:port" });
      }
      stored.legacyAddress = address = normalized;
    }
    const reply = await this.putScript(
      this.recordKey(stored.id),
      this.setKey(),
      stored.id,
      JSON.stringify(stored),
      address,
      this.indexPrefix(),
    );
    const [outcome, owner] = Array.isArray(reply) ? (reply as unknown[]) : [];
    if (outcome === "conflict") throw new LegacyAddressConflict(address, String(owner));
    if (outcome !== "created" && outcome !== "replaced") throw new Error(`unexpected registry script reply ${JSON.stringify(reply)}`);
    return { created: outcome === "created", record: stored };
  }

  async delete(id: string): Promise<boolean> {
    const reply = await this.deleteScript(this.recordKey(id), this.setKey(), canonicalOrAsGiven(id), this.indexPrefix());
    return reply === 1;
  }

  async list(): Promise<DeviceRecord[]> {
    const ids = (await this.redis.run((c) => c.smembers(this.setKey()))).sort(byCodePoint);
    const records: DeviceRecord[] = [];
    for (let i = 0; i < ids.length; i += MGET_BATCH) {
      const batch = ids.slice(i, i + MGET_BATCH);
      const values = await this.redis.run((c) => c.mget(batch.map((id) => this.recordKey(id))));
      values.forEach((json, j) => {
        // Deleted between SMEMBERS and MGET: skip it.
        if (json !== null) records.push(decode(json, batch[j] as string));
      });
    }
    return records;
  }

  async findByLegacyAddress(hostPort: string): Promise<DeviceRecord | undefined> {
    const address = normalizeLegacyAddress(hostPort);
    if (address === undefined) return undefined;
    const id = await this.redis.run((c) => c.get(this.indexPrefix() + address));
    if (id === null) return undefined;
    const record = await this.get(id);
    // Changed between the two reads: the index no longer speaks for this record.
    return record?.legacyAddress === address ? record : undefined;
  }

  /** Ids are looked up in any case, by their canonical spelling (README "Device ids"). */
  private recordKey(id: string): string {
    return this.redis.keys.device(canonicalOrAsGiven(id));
  }

  private setKey(): string {
    return this.redis.keys.devices();
  }

  private indexPrefix(): string {
    return this.redis.keys.legacyIndexPrefix();
  }
}

function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function decode(json: string, id: string): DeviceRecord {
  try {
    return JSON.parse(json) as DeviceRecord;
  } catch (err) {
    throw new GatewayError("GW_INTERNAL", { message: `registry entry of ${id} is not valid JSON`, cause: err });
  }
}
