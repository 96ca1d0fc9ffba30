// The gateway and the device agent as they ship: compiled by the project's build config (`npm run build`
// writes the same files to dist/) and run by plain node with the flags of `npm start`. The soak and fleet
// runs measure RSS, and the tsx loader alone adds about 50 MB to a node process: figures taken under tsx
// would not be the gateway's. Compiled into a temp dir, not dist/, so a run never changes the work tree.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import type { Teardown } from "../../test/helpers/stack.js";
import { progress } from "./progress.js";

export interface CompiledBuild {
  /** Node arguments that start the gateway: `--enable-source-maps DIR/gateway/main.js`. */
  gatewayArgs: string[];
  /** The same for the device agent. */
  agentArgs: string[];
  /** Type errors tsc reported (it emits anyway, as `npm run build` would): empty when clean. */
  diagnostics: string;
  remove(): Promise<void>;
}

const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url));

export async function compileGatewayAndAgent(): Promise<CompiledBuild> {
  const dir = await makeTempDir("bench-build-");
  try {
    const tsc = path.join(PROJECT_ROOT, "node_modules", "typescript", "bin", "tsc");
    let diagnostics = "";
    try {
      await promisify(execFile)(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", dir], {
        cwd: PROJECT_ROOT,
        maxBuffer: 16 * 1024 * 1024,
      });
    } catch (err) {
      // tsc exits non-zero on type errors but has written the files; a missing entry point is the real failure.
      diagnostics = String((err as { stdout?: string }).stdout ?? (err as Error).message).trim();
    }
    const gateway = path.join(dir, "gateway", "main.js");
    const agent = path.join(dir, "adapters", "device-agent", "main.js");
    if (!existsSync(gateway) || !existsSync(agent)) throw new Error(`tsc did not write the entry points:\n${diagnostics.slice(0, 4000)}`);
    // ES modules (package.json "type"), the version the gateway reports, and the project's dependencies.
    const pkg = JSON.parse(await readFile(path.join(PROJECT_ROOT, "package.json"), "utf8")) as {
      name: string;
      version: string;
      type: string;
    };
    await writeFile(path.join(dir, "package.json"), JSON.stringify({ name: pkg.name, version: pkg.version, type: pkg.type }));
    await symlink(path.join(PROJECT_ROOT, "node_modules"), path.join(dir, "node_modules"), "dir");
    return {
      gatewayArgs: ["--enable-source-maps", gateway],
      agentArgs: ["--enable-source-maps", agent],
      diagnostics,
      remove: () => removeDir(dir),
    };
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
}

/** compileGatewayAndAgent, removed by the run's teardown, with tsc's complaints shown (not fatal: it emitted). */
export async function compileForRun(teardown: Teardown): Promise<CompiledBuild> {
  progress("compiling the gateway and the agent (tsconfig.build.json) to run them as they ship");
  const build = await compileGatewayAndAgent();
  teardown.add("compiled build", () => build.remove());
  if (build.diagnostics)
    progress(`tsc reported errors; running what it emitted anyway:\n${build.diagnostics.split("\n").slice(0, 10).join("\n")}`);
  return build;
}

/** Node arguments that profile a process from its start to its exit (--cpu-prof is refused in NODE_OPTIONS). */
export function profileArgs(cpuProfDir: string | undefined): string[] {
  return cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${path.resolve(cpuProfDir)}`] : [];
}
