// `--cpu-prof DIR`: a V8 CPU profile of this process (where the gateway runs) over one measured window, the
// same format `node --cpu-prof` writes, but limited to the window instead of the whole run. The window
// hooks are synchronous; the profiler's commands are not, so start() and stop() are chained.
import { mkdir, writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";
import path from "node:path";

export interface WindowProfiler {
  /** Starts profiling (call at the window's start). */
  start(): void;
  /** Stops and writes DIR/<name>.cpuprofile (call at the window's end). */
  stop(): void;
  /** The written file, once stop() is through; rejects if profiling failed. */
  done(): Promise<string>;
  /** Drops the session (idempotent), whether or not a profile was taken. */
  close(): void;
}

export function windowProfiler(dir: string, name: string): WindowProfiler {
  const session = new Session();
  session.connect();
  let started: Promise<unknown> | undefined;
  let written: Promise<string> | undefined;
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    session.disconnect();
  };
  return {
    start() {
      started = session.post("Profiler.enable").then(() => session.post("Profiler.start"));
      started.catch(() => undefined); // reported by done()
    },
    stop() {
      if (!started) return;
      written = started
        .then(() => session.post("Profiler.stop"))
        .then(async ({ profile }) => {
          await mkdir(dir, { recursive: true });
          const file = path.resolve(dir, `${name}.cpuprofile`);
          await writeFile(file, JSON.stringify(profile));
          return file;
        })
        .finally(close);
      written.catch(() => undefined); // reported by done()
    },
    done() {
      if (!written) return Promise.reject(new Error(`profile ${name}: the window never ended`));
      return written;
    },
    close,
  };
}
