// The deployment kit (deploy/) as its tests read it: the repository's paths, accessors that assert the
// shape of parsed YAML and JSON, and a runner for the tools that check each file.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../../", import.meta.url));
export const deploy = path.join(root, "deploy");
export const read = (rel: string): string => readFileSync(path.join(root, rel), "utf8");
export const pkg = JSON.parse(read("package.json")) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

export type Json = Record<string, unknown>;
export const obj = (v: unknown, what: string): Json => {
  assert.ok(typeof v === "object" && v !== null && !Array.isArray(v), `${what} must be a mapping`);
  return v as Json;
};
export const list = (v: unknown, what: string): unknown[] => {
  assert.ok(Array.isArray(v), `${what} must be a list`);
  return v;
};
export const str = (v: unknown, what: string): string => {
  assert.equal(typeof v, "string", `${what} must be a string`);
  return v as string;
};

export interface RunResult {
  status: number | null;
  /** stdout then stderr. */
  out: string;
}

export function run(
  cmd: string,
  args: readonly string[],
  opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): RunResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? root,
    input: opts.input,
    env: opts.env ?? process.env,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 60_000,
  });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}
