// Throwaway directories for servers' config, data and logs: one per server, under the OS
// temp dir, removed on teardown (or at process exit if a test file crashed first).
import fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/** Set HARNESS_KEEP_DIRS=1 to keep servers' dirs (logs, configs) for a post-mortem. */
export const keepDirs = process.env.HARNESS_KEEP_DIRS === "1";

const created = new Set<string>();

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix.replace(/[^A-Za-z0-9._-]/g, "_")));
  created.add(path.resolve(dir));
  return dir;
}

/** fs.rm recursive+force; refuses anything outside the temp dir so a bad path can't wipe real files. */
export async function removeDir(dir: string): Promise<void> {
  const resolved = path.resolve(dir);
  const tmp = path.resolve(os.tmpdir());
  if (!resolved.startsWith(tmp + path.sep)) throw new Error(`removeDir: refusing to remove ${dir} (not under ${tmp})`);
  created.delete(resolved);
  if (keepDirs) return;
  await rm(resolved, { recursive: true, force: true, maxRetries: 3 });
}

// Safety net: a test file that crashed before its teardown still leaves no litter behind.
process.on("exit", () => {
  if (keepDirs) return;
  for (const dir of created) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort at exit
    }
  }
});
