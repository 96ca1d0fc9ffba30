// A throwaway redis-server (per test file, demo or bench run): free port, temp dir, no persistence
// unless asked for, and a restart on the same port so outage tests can take Redis away and bring it back.
import net from "node:net";
import path from "node:path";
import { freePort, onFreePorts, pollUntil, PortTaken } from "./ports.js";
import { spawnChild, type ChildHandle } from "./process.js";
import { makeTempDir, removeDir } from "./tempdir.js";

export interface RedisOptions {
  /**
   * Keep the data across kill() and restart(): an append-only file in the server's dir, fsynced before
   * every write is acknowledged (appendfsync always), so even a SIGKILL loses nothing a client was told
   * is written. Default false: nothing is persisted, and a restart comes back empty.
   */
  persistent?: boolean;
}

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:PORT */
  readonly url: string;
  readonly dir: string;
  /** Whether it was started with `persistent`: its data survives kill() and restart(). */
  readonly persistent: boolean;
  /** PID of the current redis-server (changes on restart). */
  readonly pid: number;
  /** Stops it (SIGTERM, SIGKILL after 5 s) and removes its dir. */
  stop(): Promise<void>;
  /**
   * Stops it if running, then starts it again on the SAME port and dir: empty, or, when `persistent`,
   * with every write it acknowledged (replayed from its append-only file).
   */
  restart(): Promise<void>;
  /** SIGKILL, like a crash; restart() or stop() afterwards. */
  kill(): Promise<void>;
  /** Recent redis-server output (also in DIR/redis.log). */
  output(): string;
}

/**
 * Sends one command over a raw connection and returns the reply: simple strings, integers
 * and bulk strings as text (a nil bulk as ''), Redis errors as a rejection. Enough for
 * readiness probes without pulling a client library into the harness.
 */
export function redisCommand(
  port: number,
  args: readonly string[],
  { host = "127.0.0.1", timeoutMs = 1_000 }: { host?: string; timeoutMs?: number } = {},
): Promise<string> {
  const payload = `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host });
    let buffer = Buffer.alloc(0);
    const finish = (err: Error | undefined, reply?: string): void => {
      socket.destroy();
      if (err) reject(err);
      else resolve(reply ?? "");
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`no reply from ${host}:${port} within ${timeoutMs} ms`)));
    socket.once("connect", () => socket.write(payload));
    socket.once("error", (err) => finish(err));
    socket.once("close", () => finish(new Error(`${host}:${port} closed the connection before replying`)));
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const eol = buffer.indexOf("\r\n");
      if (eol < 0) return;
      const line = buffer.subarray(1, eol).toString("utf8");
      switch (String.fromCharCode(buffer[0] ?? 0)) {
        case "+":
        case ":":
          return finish(undefined, line);
        case "-":
          return finish(new Error(`Redis error: ${line}`));
        case "$": {
          const length = Number(line);
          if (length < 0) return finish(undefined, "");
          if (buffer.length < eol + 2 + length + 2) return; // wait for the rest of the bulk
          return finish(undefined, buffer.subarray(eol + 2, eol + 2 + length).toString("utf8"));
        }
        default:
          return finish(new Error(`unexpected Redis reply: ${JSON.stringify(line)}`));
      }
    });
  });
}

/** Another process grabbed the port between freePort() and the bind: worth a retry. */

async function launch(dir: string, port: number, persistent: boolean): Promise<ChildHandle> {
  // No RDB snapshots either way; persistence, when asked for, is the append-only file alone.
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", ""];
  args.push(...(persistent ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]));
  args.push("--dir", dir, "--daemonize", "no"); // no --logfile: stdout is captured and teed to redis.log
  return launchRedisServer(dir, "redis-server", port, args, path.join(dir, "redis.log"));
}

/**
 * Starts one redis-server (a data node, or a Sentinel with `--sentinel` among `args`) and waits for its PONG;
 * a port taken by another process is PortTaken (worth a retry on another port).
 */
export async function launchRedisServer(
  dir: string,
  name: string,
  port: number,
  args: readonly string[],
  logFile: string,
): Promise<ChildHandle> {
  const handle = await spawnChild("redis-server", args, { name: `${name}:${port}`, cwd: dir, logFile });
  // If it dies (e.g. port in use) stop waiting at once instead of running into the bound.
  const early = new AbortController();
  void handle.exited.then((e) => early.abort(new Error(`${name} exited (code ${e.code}, signal ${e.signal})`)));
  try {
    await pollUntil(`${name} on 127.0.0.1:${port} to answer PING`, async () => (await redisCommand(port, ["PING"])) === "PONG", {
      timeoutMs: 30_000,
      signal: early.signal,
    });
    // The PONG could come from someone else's server on a stolen port: check it is ours.
    const info = await redisCommand(port, ["INFO", "server"], { timeoutMs: 10_000 });
    if (!info.includes(`process_id:${handle.pid}\r\n`)) throw new PortTaken(`port ${port} is served by another Redis`);
    return handle;
  } catch (err) {
    await handle.stop("SIGKILL").catch(() => {});
    const out = handle.output();
    const message = `${name} failed to start on port ${port}: ${(err as Error).message}\n--- output ---\n${out.slice(-4_000)}`;
    throw out.includes("Address already in use") || err instanceof PortTaken ? new PortTaken(message) : new Error(message);
  }
}

export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  const persistent = opts.persistent ?? false;
  const dir = await makeTempDir("redis-");
  let port = 0;
  let handle: ChildHandle;
  try {
    // redis-server cannot report a port it picked (--port 0 turns TCP off): a probed one, probed again if taken.
    handle = await onFreePorts(async () => {
      port = await freePort();
      return launch(dir, port, persistent);
    });
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
  let current: ChildHandle = handle;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    persistent,
    get pid() {
      return current.pid;
    },
    async stop() {
      await current.stop();
      await removeDir(dir);
    },
    async restart() {
      await current.stop();
      current = await launch(dir, port, persistent);
    },
    async kill() {
      await current.stop("SIGKILL");
    },
    output: () => current.output(),
  };
}
