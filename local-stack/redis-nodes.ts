// The redis-servers of one throwaway deployment (Sentinel, Cluster): each on a free port, all in one temp
// dir, each logging to its own file there; stop() ends them all and removes the dir.
import path from "node:path";
import { freePort, onFreePorts } from "./ports.js";
import type { ChildHandle } from "./process.js";
import { launchRedisServer } from "./redis.js";
import { makeTempDir, removeDir } from "./tempdir.js";

export interface RedisNodes {
  readonly dir: string;
  /** Starts one more redis-server (`kind` names it and its log) with `argsFor(port)`; returns its port. */
  start: (kind: string, argsFor: (port: number) => Promise<string[]> | string[]) => Promise<number>;
  /** SIGKILLs the server on `port`, like a crash. */
  kill: (port: number) => Promise<void>;
  /** Ends every server it started and removes the dir. */
  stop: () => Promise<void>;
  /** Recent output of every server, for a failing test's message. */
  output: () => string;
}

export async function startRedisNodes(dirPrefix: string): Promise<RedisNodes> {
  const dir = await makeTempDir(dirPrefix);
  const children: ChildHandle[] = [];
  const byPort = new Map<number, ChildHandle>();
  return {
    dir,
    start: (kind, argsFor) =>
      onFreePorts(async () => {
        const port = await freePort();
        const handle = await launchRedisServer(dir, kind, port, await argsFor(port), path.join(dir, `${kind}-${port}.log`));
        children.push(handle);
        byPort.set(port, handle);
        return port;
      }),
    async kill(port) {
      const handle = byPort.get(port);
      if (!handle) throw new Error(`no redis-server of this deployment on port ${port}`);
      await handle.stop("SIGKILL");
    },
    async stop() {
      await Promise.all(children.map((c) => c.stop("SIGKILL")));
      await removeDir(dir);
    },
    output: () => children.map((c) => `--- ${c.name} ---\n${c.output().slice(-2_000)}`).join("\n"),
  };
}

/** A data node bound to 127.0.0.1 with nothing persisted, ready to be a primary or a replica. */
export function dataNodeArgs(dir: string, port: number): string[] {
  // Diskless full sync without its 5 s delay, so a replica is in sync at once.
  return [
    ...["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    ...["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"],
    ...["--dir", dir, "--dbfilename", `dump-${port}.rdb`, "--daemonize", "no"],
  ];
}
