#!/usr/bin/env node
// The `gatewayctl` command (package.json "bin"). In a clone after `npm ci` it runs the TypeScript entry
// directly through tsx (a devDependency), so no build step comes first and no stale build is ever run. Where
// tsx is not installed (`npm ci --omit=dev`), it runs the compiled entry that `npm run build` writes to dist/.
import { existsSync } from "node:fs";
import process from "node:process";
import { fileURLToPath, URL } from "node:url";

const source = new URL("./main.ts", import.meta.url);
const built = new URL("../dist/cli/main.js", import.meta.url);

async function loadTsx() {
  try {
    return await import("tsx/esm/api");
  } catch {
    return undefined;
  }
}

const tsx = existsSync(fileURLToPath(source)) ? await loadTsx() : undefined;
if (tsx) {
  tsx.register();
  await import(source.href);
} else if (existsSync(fileURLToPath(built))) {
  await import(built.href);
} else {
  process.stderr.write("gatewayctl: neither tsx (npm ci) nor a build (npm run build) is installed\n");
  process.exitCode = 1;
}
