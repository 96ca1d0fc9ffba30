import { GatewayError } from "../errors.js";
import type { DeviceRecord, Transport } from "../registry/device.js";
import { devicePage } from "../registry/device-listing.js";
import type { WaveRegistry } from "./moves.js";
import type { WaveRequest } from "./request.js";
import { pickPercent } from "./selection.js";
import type { WaveDevice } from "./wave.js";

export interface SelectionDeps {
  registry: Pick<WaveRegistry, "get" | "idsIn" | "countIn" | "getMany">;
  /** Whether each device's agent has a current presence (unknown counts as not, as in the listing's filter). */
  areOnline(records: readonly DeviceRecord[]): Promise<boolean[]>;
  /** The watched wave a device is in already, if any. */
  waveOf(deviceId: string): string | undefined;
}

/** Devices on these transports may join a wave. */
const MOVABLE: ReadonlySet<Transport> = new Set(["http", "shadow"]);
/** Entries a step of the walk for candidates holds at most. */
const PAGE = 1000;

function movable(record: DeviceRecord | undefined): record is DeviceRecord & { transport: "http" | "shadow" } {
  return record !== undefined && MOVABLE.has(record.transport);
}

/**
 * The devices a wave request names, each with its transport now. `ids`: each must exist, be on http or
 * shadow (400 GW_INVALID_FIELD `ids` naming it) and be in no watched wave (409 GW_CONFLICT). `percent`: the
 * candidates (on http or shadow, matching the filter, in no watched wave), the share of them pickPercent()
 * takes. The candidates are found as the listing finds a filter's entries (devicePage, page after page of
 * the ordered ids): only the candidates' ids are held, not the whole registry.
 */
export async function selectDevices(request: WaveRequest, deps: SelectionDeps): Promise<WaveDevice[]> {
  if (request.ids) return named(request.ids, deps);
  const transports = new Map<string, "http" | "shadow">();
  let after: string | undefined;
  do {
    const page = await devicePage(
      { devices: deps.registry, online: { areOnline: (records) => deps.areOnline(records) } },
      { ...request.filter, transports: MOVABLE, limit: PAGE, after },
    );
    for (const r of page.devices) if (movable(r) && deps.waveOf(r.id) === undefined) transports.set(r.id, r.transport);
    after = page.next;
  } while (after !== undefined);
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
