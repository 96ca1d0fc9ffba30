import { GatewayError } from "../errors.js";
import type { DeviceRecord } from "../registry/device.js";
import type { WaveRegistry } from "./moves.js";
import type { WaveRequest } from "./request.js";
import { pickPercent } from "./selection.js";
import type { WaveDevice } from "./wave.js";

export interface SelectionDeps {
  registry: Pick<WaveRegistry, "get" | "list">;
  /** Whether each device's agent has a current presence (unknown counts as not, as in the listing's filter). */
  areOnline(records: readonly DeviceRecord[]): Promise<boolean[]>;
  /** The watched wave a device is in already, if any. */
  waveOf(deviceId: string): string | undefined;
}

/** Presence lookups sent at once for the `online` filter. */
const ONLINE_BATCH = 500;

function movable(record: DeviceRecord | undefined): record is DeviceRecord & { transport: "http" | "shadow" } {
  return record?.transport === "http" || record?.transport === "shadow";
}

/**
 * The devices a wave request names, each with its transport now. `ids`: each must exist, be on http or
 * shadow (400 GW_INVALID_FIELD `ids` naming it) and be in no watched wave (409 GW_CONFLICT). `percent`: the
 * candidates (on http or shadow, matching the filter, in no watched wave), the share of them pickPercent()
 * takes.
 *
 * The candidates come from the registry's whole listing, filtered here: fine for the fleets this was tested
 * with (10,000 entries read in a fraction of a second), not for a million; a paged walk of the registry
 * would bound the memory it takes.
 */
export async function selectDevices(request: WaveRequest, deps: SelectionDeps): Promise<WaveDevice[]> {
  if (request.ids) return named(request.ids, deps);
  const { prefix, online } = request.filter;
  const candidates = (await deps.registry.list()).filter(
    (r) => movable(r) && (prefix === undefined || r.id.startsWith(prefix)) && deps.waveOf(r.id) === undefined,
  ) as Array<DeviceRecord & { transport: "http" | "shadow" }>;
  const kept = online === undefined ? candidates : await byPresence(candidates, online, deps);
  const transports = new Map(kept.map((r) => [r.id, r.transport]));
  return pickPercent([...transports.keys()], request.percent ?? 0).map((id) => [id, transports.get(id) ?? "http"] as const);
}

async function named(ids: readonly string[], deps: SelectionDeps): Promise<WaveDevice[]> {
  const records = await Promise.all(ids.map((id) => deps.registry.get(id)));
  return ids.map((id, i) => {
    const record = records[i];
    if (record === undefined) throw new GatewayError("GW_INVALID_FIELD", { field: "ids", message: `ids: no device ${id} in the registry` });
    if (!movable(record))
      throw new GatewayError("GW_INVALID_FIELD", {
        field: "ids",
        message: `ids: ${id} is on ${record.transport}: a wave moves devices on http or shadow`,
      });
    const wave = deps.waveOf(id);
    if (wave !== undefined)
      throw new GatewayError("GW_CONFLICT", { field: "ids", message: `ids: ${id} is in wave ${wave}, still watched` });
    return [id, record.transport] as const;
  });
}

async function byPresence<T extends DeviceRecord>(records: readonly T[], online: boolean, deps: SelectionDeps): Promise<T[]> {
  const kept: T[] = [];
  for (let i = 0; i < records.length; i += ONLINE_BATCH) {
    const batch = records.slice(i, i + ONLINE_BATCH);
    const states = await deps.areOnline(batch);
    batch.forEach((r, j) => {
      if (states[j] === online) kept.push(r);
    });
  }
  return kept;
}
