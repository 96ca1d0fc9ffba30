// Server processes of the local stack (tests, demo, bench): spawned directly (no shell, so the PID
// is the server's own), stopped with a bound, their recent output kept for failure messages, and
// killed at exit if their owner dies before its teardown.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import { open } from "node:fs/promises";
import os from "node:os";
import type { Readable } from "node:stream";

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  /** Used in error messages. */
  name: string;
  /** Added on top of process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Also append stdout/stderr to this file (kept whole, unlike output()). */
  logFile?: string;
}

export interface ChildHandle {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /**
   * Resolves once the process has exited (and been reaped). Never rejects. Children are
   * unref'd, so awaiting this alone does not keep Node running: stop() does.
   */
  readonly exited: Promise<ExitInfo>;
  hasExited(): boolean;
  /** Sends `signal`, then SIGKILL after timeoutMs; resolves once exited. No-op if already exited. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
  /** The last ~64 KiB of combined stdout/stderr. */
  output(): string;
}

const OUTPUT_LIMIT = 64 * 1024;

// Every child not yet exited, for the exit-time safety net below.
const running = new Set<ChildProcess>();

function killAllChildren(): void {
  // Synchronous by necessity: nothing async runs in an 'exit' hook. SIGKILL cannot be ignored.
  for (const child of running) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
}

process.on("exit", killAllChildren);

// A signal's default action skips 'exit' hooks, and node:test stops a timed-out test file
// with SIGTERM: without this, its servers would outlive it.
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
  process.on(signal, () => {
    killAllChildren();
    // Sole listener: die as the default would (exit hooks included). Otherwise the other
    // listener (e.g. an app's graceful shutdown) decides what happens next.
    if (process.listenerCount(signal) === 1) process.exit(128 + os.constants.signals[signal]);
  });
}

/** Resolves with `p`'s value, or 'timeout' after ms; clears its timer so nothing lingers. */
function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve("timeout"), ms);
    p.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

export async function spawnChild(cmd: string, args: readonly string[], opts: SpawnOptions): Promise<ChildHandle> {
  const { name, env, cwd, logFile } = opts;
  const child = spawn(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });

  let tail = "";
  let exitInfo: ExitInfo | undefined;
  const log = logFile ? fs.createWriteStream(logFile, { flags: "a" }) : undefined;
  log?.on("error", () => {}); // a log file problem must not crash the test process

  const capture = (stream: Readable | null): void => {
    if (!stream) return;
    stream.setEncoding("utf8"); // keeps multi-byte characters whole across chunks
    stream.on("data", (text: string) => {
      tail += text;
      if (tail.length > OUTPUT_LIMIT) tail = tail.slice(-OUTPUT_LIMIT);
      log?.write(text);
    });
    // A forgotten server must not keep the test process alive: the exit hook then kills it.
    (stream as Readable & { unref?: () => void }).unref?.();
  };
  capture(child.stdout);
  capture(child.stderr);

  // Attached before the first await, so an immediate exit is never missed.
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("exit", (code, signal) => {
      exitInfo = { code, signal };
      running.delete(child);
      resolve(exitInfo);
    });
  });
  child.on("close", () => log?.end()); // 'close' comes after the last output chunk

  // 'spawn' or 'error' (e.g. ENOENT) tells whether there is a process at all.
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", () => resolve());
    child.once("error", (err) => reject(new Error(`${name}: failed to start ${cmd}: ${err.message}`)));
  });
  child.on("error", (err) => {
    tail += `\n[harness] ${name}: ${err.message}\n`; // later errors (e.g. kill) must not be unhandled
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: ${cmd} started without a pid`);
  running.add(child);
  child.unref();

  const stop = async (signal: NodeJS.Signals = "SIGTERM", timeoutMs = 5_000): Promise<void> => {
    if (exitInfo) return;
    child.kill(signal);
    if ((await within(exited, timeoutMs)) !== "timeout") return;
    child.kill("SIGKILL");
    if ((await within(exited, 5_000)) !== "timeout") return;
    throw new Error(`${name} (pid ${pid}) did not exit even after SIGKILL`);
  };

  return {
    name,
    pid,
    child,
    exited,
    hasExited: () => exitInfo !== undefined,
    stop,
    output: () => tail,
  };
}

/**
 * True if the process exists and is not a zombie. `kill(pid, 0)` alone succeeds on zombies
 * (exited but not reaped), which linger on these machines, so ask ps for the state too.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM"; // exists, but not ours
  }
  const ps = spawnSync("ps", ["-o", "stat=", "-p", String(pid)], { encoding: "utf8" });
  if (ps.error) return true; // no ps: trust kill(0)
  const stat = ps.stdout.trim();
  return ps.status === 0 && stat !== "" && !stat.startsWith("Z");
}

/** The last maxBytes of a (log) file, or a note saying why there is none; for error messages. */
export async function readFileTail(file: string, maxBytes = 8 * 1024): Promise<string> {
  try {
    const handle = await open(file, "r");
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, maxBytes);
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, size - length);
      return buffer.toString("utf8");
    } finally {
      await handle.close();
    }
  } catch (err) {
    return `[no ${file}: ${(err as Error).message}]`;
  }
}
