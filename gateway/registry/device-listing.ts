import type { DeviceRecord, Transport } from "./device.js";

/** A range of ids, for the listing's pages. */
export interface IdRange {
  /** Only ids after this one (exclusive); undefined: from the first. */
  after?: string | undefined;
  /** Only ids that start with it (compared as stored: canonical ids are lower case). */
  prefix?: string | undefined;
}

/** The ordered ids of the registry and their records (RedisDeviceRegistry has them). */
export interface OrderedDevices {
  /** Up to `count` ids in `range`, in order. */
  idsIn(range: IdRange, count: number): Promise<string[]>;
  /** How many ids are in `range` (ids whose record is gone may count). */
  countIn(range: IdRange): Promise<number>;
  /** The records of `ids`, in their order; undefined where there is none. */
  getMany(ids: readonly string[]): Promise<Array<DeviceRecord | undefined>>;
}

/** Whether each device's agent has a current presence (unknown counts as not), in the order given. */
export interface OnlineLookup {
  areOnline(records: readonly DeviceRecord[]): Promise<boolean[]>;
}

/** The listing's filters (docs/admin-api.md, "Listing"); absent: no condition. */
export interface DeviceFilter {
  transports?: ReadonlySet<Transport> | undefined;
  online?: boolean | undefined;
  /** Canonical (lower case), compared with the ids as stored. */
  prefix?: string | undefined;
}

export interface PageRequest extends DeviceFilter {
  /** Most entries in the page: 1-1000. */
  limit: number;
  /** Continue after this id (the page before's `next`). */
  after?: string | undefined;
}

export interface DevicePage {
  devices: DeviceRecord[];
  /** The last id this page examined, to continue after; undefined when nothing is left. */
  next: string | undefined;
  /** Ids after `next` within the prefix (any transport, online or not): an upper bound of what is left. */
  remaining: number;
}

/** A page examines at most this many ids per entry it may hold, and at least EXAMINE_MIN. */
export const EXAMINE_PER_LIMIT = 10;
export const EXAMINE_MIN = 1000;
/** Ids read per step while a filter throws entries away (their records are read together). */
const FILTERED_STEP = 1000;

/**
 * One page of the registry in id order, filtered (docs/admin-api.md, "Listing"). The walk goes by the
 * ordered ids (RedisDeviceRegistry.idsIn), so each page costs what it examines, not the fleet's size; a
 * filter that matches few entries would make one request read the whole fleet, so a page examines at most
 * max(limit x 10, 1000) ids and then answers what it found with `next` where it stopped. Continuing after
 * an id (not at an offset) is what makes a walk return each entry that exists throughout exactly once, while
 * others are created or deleted meanwhile.
 */
export async function devicePage(
  deps: { devices: OrderedDevices; online?: OnlineLookup | undefined },
  q: PageRequest,
): Promise<DevicePage> {
  const filtered = q.transports !== undefined || q.online !== undefined;
  const budget = Math.max(q.limit * EXAMINE_PER_LIMIT, EXAMINE_MIN);
  const found: DeviceRecord[] = [];
  let after = q.after;
  let examined = 0;
  let exhausted = false;
  while (found.length < q.limit && examined < budget && !exhausted) {
    const wanted = q.limit - found.length;
    const step = Math.min(budget - examined, filtered ? Math.max(wanted, FILTERED_STEP) : wanted);
    const ids = await deps.devices.idsIn({ after, prefix: q.prefix }, step);
    exhausted = ids.length < step;
    const records = await deps.devices.getMany(ids);
    const keep = await matching(deps, q, records);
    for (let i = 0; i < ids.length; i++) {
      examined++;
      after = ids[i];
      if (keep[i] === true) found.push(records[i] as DeviceRecord);
      if (found.length === q.limit) {
        // Stopped inside the step: what follows was not examined after all.
        exhausted &&= i === ids.length - 1;
        break;
      }
    }
  }
  if (after === undefined || exhausted) return { devices: found, next: undefined, remaining: 0 };
  const remaining = await deps.devices.countIn({ after, prefix: q.prefix });
  return { devices: found, next: remaining > 0 ? after : undefined, remaining };
}

/** Per record (undefined: its entry is gone), whether it passes the filters; presence is asked once for all. */
async function matching(
  deps: { online?: OnlineLookup | undefined },
  q: DeviceFilter,
  records: ReadonlyArray<DeviceRecord | undefined>,
): Promise<boolean[]> {
  const keep = records.map((r) => r !== undefined && (q.transports === undefined || q.transports.has(r.transport)));
  if (q.online === undefined) return keep;
  if (!deps.online) throw new Error("an online filter needs a presence lookup");
  const asked = records.filter((_r, i): _r is DeviceRecord => keep[i] === true);
  const online = await deps.online.areOnline(asked);
  let j = 0;
  return keep.map((k) => k && online[j++] === q.online);
}
