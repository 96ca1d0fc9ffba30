// The parent side of the worker protocol: starts `node --import tsx <file>.ts` (a file: URL, resolved by the
// caller against its own import.meta.url) as a plain child
// (its PID is the worker's own, so /proc/PID/stat is the worker's CPU), hands it its configuration, reads its
// JSON events, sends it commands, and makes sure it never outlives the bench.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

export interface WorkerEvent {
  event: string;
  [field: string]: unknown;
}

const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url));

// Every live worker, for the synchronous last-resort kill when the bench process exits; and the files
// their configurations were handed over in.
const live = new Set<ChildProcess>();
const configDirs = new Set<string>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
  for (const dir of configDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * The configuration goes in a file (BENCH_CONFIG_FILE), not in the environment: one environment string is
 * limited to 128 KiB (MAX_ARG_STRLEN), which the device lists of a 5,000-device run pass.
 */
function writeConfig(config: unknown): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-worker-"));
  configDirs.add(dir);
  const file = path.join(dir, "config.json");
  writeFileSync(file, JSON.stringify(config));
  return file;
}

function removeConfig(file: string): void {
  const dir = path.dirname(file);
  configDirs.delete(dir);
  rmSync(dir, { recursive: true, force: true });
}

export class WorkerProcess {
  readonly pid: number;
  private readonly child: ChildProcess;
  private readonly seen: WorkerEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly listeners: Array<(e: WorkerEvent) => void> = [];
  private exitInfo: string | undefined;
  readonly exited: Promise<void>;

  private constructor(
    readonly name: string,
    file: URL,
    config: unknown,
  ) {
    const configFile = writeConfig(config);
    this.child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(file)], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, BENCH_CONFIG_FILE: configFile },
      stdio: ["pipe", "pipe", "inherit"],
    });
    if (this.child.pid === undefined) {
      removeConfig(configFile);
      throw new Error(`${name}: could not start ${String(file)}`);
    }
    this.pid = this.child.pid;
    live.add(this.child);
    this.child.stdin?.on("error", () => undefined); // EPIPE when it already quit: the exit tells why
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        live.delete(this.child);
        removeConfig(configFile);
        this.exitInfo = signal ? `signal ${signal}` : `code ${code}`;
        this.wake();
        resolve();
      });
    });
    createInterface({ input: this.child.stdout! }).on("line", (line) => this.onLine(line));
  }

  static start(name: string, file: URL, config: unknown): WorkerProcess {
    return new WorkerProcess(name, file, config);
  }

  /** Called for each event as its line arrives (used to sample CPU at the window edges). */
  onEvent(listener: (e: WorkerEvent) => void): void {
    this.listeners.push(listener);
  }

  /** The first not yet consumed event of this name; fails if the worker reports failure or exits first. */
  async next(event: string, timeoutMs: number): Promise<WorkerEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.seen.findIndex((e) => e.event === event || e.event === "failed");
      if (i >= 0) {
        const [found] = this.seen.splice(i, 1) as [WorkerEvent];
        if (found.event === "failed") throw new Error(`${this.name} failed: ${String(found.message)}`);
        return found;
      }
      if (this.exitInfo) throw new Error(`${this.name} exited (${this.exitInfo}) before "${event}"`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.name}: no "${event}" within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  send(command: string): void {
    this.child.stdin?.write(`${command}\n`);
  }

  /** Closing stdin asks it to finish; SIGTERM, then SIGKILL, if it does not within the bound. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exitInfo) return;
    this.child.stdin?.end();
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      if (await this.exitsWithin(graceMs)) return;
      this.child.kill(signal);
    }
    if (!(await this.exitsWithin(graceMs))) throw new Error(`${this.name} (pid ${this.pid}) did not exit`);
  }

  private async exitsWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const result = await Promise.race([this.exited.then(() => true as const), bound]);
    clearTimeout(timer);
    return result;
  }

  private onLine(line: string): void {
    let event: WorkerEvent;
    try {
      event = JSON.parse(line) as WorkerEvent;
    } catch {
      process.stderr.write(`[${this.name}] ${line}\n`); // stray output: show it, it is not an event
      return;
    }
    for (const l of this.listeners) l(event);
    this.seen.push(event);
    this.wake();
  }

  private wake(): void {
    for (const w of [...this.waiters]) {
      this.waiters.delete(w);
      w();
    }
  }
}
