import type { RedisStore } from "../redis/client.js";
import { TRANSPORTS, type Transport } from "./device.js";

/**
 * Adds ARGV's deltas (transport, delta, ...) to the counts, only once they exist: before the first count of
 * an older registry (TransportCounts.read) a change must not create a hash that counts that change alone.
 * KEYS: the counts.
 */
const ADD = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1`;

/** Writes the first count (ARGV: transport, count, ...), unless counts exist by now. KEYS: the counts. */
const INIT = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1`;

/**
 * Registered devices by transport, kept in `{prefix}transportcounts` (a hash) by every write of the
 * registry, so that `gateway_devices` and `GET /admin/migration` read three numbers instead of the whole
 * registry (which, at 100,000 entries, cost each instance 1.6 s of CPU per scrape). Each write adds what it
 * changed, known exactly from the record it replaced (SET … GET, GETDEL); two writers of one device add
 * up right in any order. A registry without the hash (written by a release before it, or moved by
 * migrate-keys) is counted once, by the first read, from its records.
 *
 * A write is two steps (the record, then its count: different hash slots in a Cluster), so an instance that
 * dies between them leaves the counts off by one, and writes made while an older registry is first counted
 * may be missed by that count. Deleting the hash has it counted again from the records (README, "Admin API").
 */
export class TransportCounts {
  private readonly add: (...args: Array<string | number>) => Promise<number>;
  private readonly init: (...args: Array<string | number>) => Promise<number>;
  /** The first count under way on this instance (one at a time). */
  private counting: Promise<Record<Transport, number>> | undefined;

  constructor(
    private readonly redis: RedisStore,
    /** Every transport in the registry's records, read whole (the first count only). */
    private readonly countRecords: () => Promise<Array<Transport | undefined>>,
  ) {
    this.add = redis.script<number>("transportCountsAdd", 1, ADD);
    this.init = redis.script<number>("transportCountsInit", 1, INIT);
  }

  /** A record replaced (`before`: its transport, undefined when there was none) by one on `after` (undefined: deleted). */
  async changed(before: Transport | undefined, after: Transport | undefined): Promise<void> {
    if (before === after) return;
    const deltas: Array<string | number> = [];
    if (before !== undefined) deltas.push(before, -1);
    if (after !== undefined) deltas.push(after, 1);
    await this.add(this.key(), ...deltas);
  }

  /** Registered devices by transport; counted from the records when the registry has no counts yet. */
  async read(): Promise<Record<Transport, number>> {
    const stored = await this.redis.run((c) => c.hgetall(this.key()));
    if (Object.keys(stored).length > 0) return fromFields(stored);
    this.counting ??= this.countFirst().finally(() => (this.counting = undefined));
    return this.counting;
  }

  private async countFirst(): Promise<Record<Transport, number>> {
    const counts = zero();
    for (const transport of await this.countRecords()) if (transport !== undefined) counts[transport]++;
    const written = await this.init(this.key(), ...TRANSPORTS.flatMap((t) => [t, counts[t]]));
    // Another instance counted first: its counts, with the changes added since, are the ones kept.
    return written === 1 ? counts : fromFields(await this.redis.run((c) => c.hgetall(this.key())));
  }

  private key(): string {
    return this.redis.keys.transportCounts();
  }
}

function zero(): Record<Transport, number> {
  return Object.fromEntries(TRANSPORTS.map((t) => [t, 0])) as Record<Transport, number>;
}

function fromFields(fields: Record<string, string>): Record<Transport, number> {
  const counts = zero();
  for (const t of TRANSPORTS) counts[t] = Math.max(0, Number(fields[t] ?? 0) || 0);
  return counts;
}
