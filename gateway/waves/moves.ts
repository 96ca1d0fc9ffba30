import { isGatewayError } from "../errors.js";
import type { DeviceRecord, Transport } from "../registry/device.js";
import type { DeviceStore } from "../registry/redis-registry.js";
import { validateDevice } from "../registry/validate.js";
import type { WaveDevice } from "./wave.js";

/** The registry as waves use it: each change a PUT of the entry would make (its change notice included). */
export type WaveRegistry = Pick<DeviceStore, "get" | "upsert" | "idsIn" | "countIn" | "getMany">;

/** Devices changed at once (their writes share round trips: the Redis client pipelines them). */
const BATCH = 100;

/**
 * Moves each planned device to `to`, if it is still on the transport it was chosen on; answers those moved.
 * A device changed or deleted since it was chosen is left out of the wave.
 */
export async function moveDevices(registry: WaveRegistry, planned: readonly WaveDevice[], to: Transport): Promise<WaveDevice[]> {
  const moved: WaveDevice[] = [];
  for (let i = 0; i < planned.length; i += BATCH) {
    await Promise.all(
      planned.slice(i, i + BATCH).map(async (device) => {
        const [id, before] = device;
        const record = await registry.get(id);
        if (record?.transport !== before) return;
        if (await change(registry, record, to)) moved.push(device);
      }),
    );
  }
  return moved;
}

/**
 * Puts each wave device back on the transport it had before the wave, unless it was changed since (it is no
 * longer on `to`) or is gone: those are skipped. `stillOurs` is asked after every batch: a rollback whose
 * claim was lost (it took longer than its lease and another instance took over) stops there.
 */
export async function restoreDevices(
  registry: WaveRegistry,
  devices: readonly WaveDevice[],
  to: Transport,
  stillOurs: () => Promise<boolean>,
): Promise<{ restored: number; skipped: string[] }> {
  let restored = 0;
  const skipped: string[] = [];
  for (let i = 0; i < devices.length; i += BATCH) {
    await Promise.all(
      devices.slice(i, i + BATCH).map(async ([id, before]) => {
        const record = await registry.get(id);
        // A registry has no compare-and-set: a change made between this read and the write below is
        // overwritten (the same window as two operators' PATCHes of one device).
        if (record?.transport === to && (await change(registry, record, before))) restored++;
        else skipped.push(id);
      }),
    );
    if (!(await stillOurs())) throw new Error("the rollback's claim was taken over by another instance");
  }
  skipped.sort();
  return { restored, skipped };
}

/**
 * Writes the entry with its transport changed, checked as a whole as a PATCH would be; false when the result
 * is not a valid entry (an `http` device whose `httpTarget` was removed meanwhile) or the entry was deleted.
 */
async function change(registry: WaveRegistry, record: DeviceRecord, transport: Transport): Promise<boolean> {
  let changed: DeviceRecord;
  try {
    changed = validateDevice({ ...record, transport }, record.id);
  } catch (err) {
    if (isGatewayError(err) && err.code === "GW_INVALID_FIELD") return false;
    throw err;
  }
  try {
    await registry.upsert(changed, { existing: true });
  } catch (err) {
    if (isGatewayError(err) && err.code === "GW_UNKNOWN_DEVICE") return false;
    throw err;
  }
  return true;
}
