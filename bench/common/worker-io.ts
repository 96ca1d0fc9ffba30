// The child side of the parent/worker protocol: JSON lines on stdout (one event each), commands as lines
// on stdin. A closed stdin means the parent is gone, and the worker must not outlive it.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

export function emit(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

/** The JSON configuration the parent hands over in the file BENCH_CONFIG_FILE names (read once, at the start). */
export function workerConfig<T>(): T {
  const file = process.env.BENCH_CONFIG_FILE;
  if (!file) throw new Error("BENCH_CONFIG_FILE is not set: this file is started by npm run bench (bench/run.ts)");
  return JSON.parse(readFileSync(file, "utf8")) as T;
}

/** Calls `onCommand` per stdin line, and `onGone` once when stdin closes or a stop signal arrives. */
export function listen(onCommand: (command: string) => void, onGone: () => void): void {
  let gone = false;
  const leave = (): void => {
    if (gone) return;
    gone = true;
    onGone();
  };
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    if (line.trim()) onCommand(line.trim());
  });
  lines.on("close", leave);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, leave);
}

/** Reports a fatal error to the parent (and on stderr) and exits non-zero. */
export function fail(err: unknown): never {
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  emit("failed", { message });
  process.stderr.write(`${message}\n`);
  process.exit(1);
}
