// Every mode's report goes to one JSON file per run, named by its kind and start time.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

/** Writes bench/results/<kind>-<timestamp>.json (kind: bench, soak, fleet) and returns its path. */
export async function writeReport(r: { startedAt: string }, dir: string, kind = "bench"): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${kind}-${r.startedAt.replace(/[:.]/g, "-")}.json`);
  await writeFile(file, `${JSON.stringify(r, null, 2)}\n`);
  return file;
}
