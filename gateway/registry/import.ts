import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "../../lib/env.js";
import { isGatewayError } from "../errors.js";
import type { DeviceRecord } from "./device.js";
import type { DeviceStore } from "./redis-registry.js";
import { checkDevice } from "./validate.js";

const VARIABLE = "GATEWAY_DEVICES_FILE";

/**
 * Parses and checks the text of a devices file: a JSON array or a YAML list of registry entries, each with
 * its `id`. Every bad entry is reported (index, field, why) in one ConfigError, so an operator fixes the
 * file in one round. `.json` files are read as JSON; anything else as YAML (which also reads JSON).
 */
export function parseDevicesFile(text: string, fileName: string): DeviceRecord[] {
  let data: unknown;
  try {
    data = extname(fileName).toLowerCase() === ".json" ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError([
      `${VARIABLE}=${JSON.stringify(fileName)} is not valid ${extname(fileName).toLowerCase() === ".json" ? "JSON" : "YAML"}: ${firstLine(err)}`,
    ]);
  }
  if (!Array.isArray(data)) {
    throw new ConfigError([`${VARIABLE}=${JSON.stringify(fileName)} must hold a list of devices (a JSON array or a YAML sequence)`]);
  }
  const problems: string[] = [];
  const records: DeviceRecord[] = [];
  const byId = new Map<string, number>();
  const byAddress = new Map<string, number>();
  data.forEach((entry: unknown, index) => {
    const where = `${VARIABLE} entry ${index}${describeId(entry)}`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      problems.push(`${where}: must be an object with the device's fields`);
      return;
    }
    const result = checkDevice(entry);
    if (!result.ok) {
      for (const p of result.problems) problems.push(`${where}: field ${p.field}: ${p.message}`);
      return;
    }
    const { record } = result;
    const sameId = byId.get(record.id);
    if (sameId !== undefined) problems.push(`${where}: field id: id ${record.id} is also entry ${sameId}`);
    else byId.set(record.id, index);
    if (record.legacyAddress !== undefined) {
      const sameAddress = byAddress.get(record.legacyAddress);
      if (sameAddress !== undefined) problems.push(`${where}: field legacyAddress: ${record.legacyAddress} is also entry ${sameAddress}'s`);
      else byAddress.set(record.legacyAddress, index);
    }
    records.push(record);
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return records;
}

/** Reads and checks the file; nothing is written anywhere. */
export async function loadDevicesFile(path: string): Promise<DeviceRecord[]> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError([`${VARIABLE}=${JSON.stringify(path)} cannot be read: ${firstLine(err)}`]);
  }
  return parseDevicesFile(text, path);
}

/**
 * Creates or replaces every entry (entries not in the file are left alone). An address another device
 * already owns fails that entry; the others are still written, and all failures are reported together.
 */
export async function importDevices(
  store: Pick<DeviceStore, "upsert">,
  records: readonly DeviceRecord[],
): Promise<{ created: number; replaced: number }> {
  const problems: string[] = [];
  let created = 0;
  let replaced = 0;
  for (const [index, record] of records.entries()) {
    try {
      if ((await store.upsert(record)).created) created++;
      else replaced++;
    } catch (err) {
      if (!isGatewayError(err) || err.code !== "GW_CONFLICT") throw err;
      problems.push(`${VARIABLE} entry ${index} (id ${JSON.stringify(record.id)}): field ${err.field ?? "legacyAddress"}: ${err.message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { created, replaced };
}

function describeId(entry: unknown): string {
  const id = (entry as { id?: unknown } | null)?.id;
  return typeof id === "string" && id.length <= 64 ? ` (id ${JSON.stringify(id)})` : "";
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "";
}
