import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The gateway's version, from the nearest package.json above this file: that is `../` when run from the
 * sources and `../../` when run from `dist/`, so neither layout needs a build step to stamp it.
 */
export function gatewayVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "xmpp-http-gateway" && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return "unknown";
}
