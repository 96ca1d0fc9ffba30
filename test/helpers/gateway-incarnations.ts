// One gateway instance as an operator's process manager sees it: `node --import tsx gateway/main.ts` on a
// fixed port, started, killed and started again, each run (an incarnation: `ga.1`, `ga.2`, ...) logging to a
// file of its own, so that tests can tell which incarnation answered what.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Env } from "../../lib/env.js";
import { pollUntil } from "../../local-stack/ports.js";
import { spawnChild, type ChildHandle, type ExitInfo } from "../../local-stack/process.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface LogLine {
  incarnation: string;
  line: Record<string, unknown>;
}

export interface IncarnationOptions {
  /** What start() waits for: `ready` (/readyz 200), or `listening` (/healthz 200: a hot standby is never ready). */
  waitFor: "ready" | "listening";
}

export class GatewayIncarnations {
  handle: ChildHandle | undefined;
  incarnation = "";
  /** Every incarnation's PID, for a check that none is left behind. */
  readonly pids: number[] = [];
  private readonly logFiles: Array<{ incarnation: string; file: string }> = [];
  private count = 0;

  constructor(
    readonly name: string,
    readonly port: number,
    /** The environment of an incarnation, given its name (use it as GATEWAY_INSTANCE_ID). */
    private readonly env: (incarnation: string) => Env,
    private readonly logDir: string,
    private readonly opts: IncarnationOptions,
  ) {}

  /** The names of the incarnations started so far. */
  get incarnations(): string[] {
    return this.logFiles.map((f) => f.incarnation);
  }

  async start(): Promise<void> {
    this.incarnation = `${this.name}.${++this.count}`;
    const file = path.join(this.logDir, `${this.incarnation}.log`);
    const handle = await spawnChild(process.execPath, ["--import", "tsx", "gateway/main.ts"], {
      name: `gateway ${this.incarnation}`,
      cwd: ROOT,
      env: this.env(this.incarnation),
      logFile: file,
    });
    this.handle = handle;
    this.pids.push(handle.pid);
    this.logFiles.push({ incarnation: this.incarnation, file });
    const early = new AbortController();
    void handle.exited.then((e) => early.abort(new Error(`${this.incarnation} exited (code ${e.code}, signal ${e.signal})`)));
    const endpoint = this.opts.waitFor === "ready" ? "readyz" : "healthz";
    await pollUntil(
      `${this.incarnation} ${this.opts.waitFor}`,
      async () => (await fetch(`http://127.0.0.1:${this.port}/${endpoint}`).catch(() => undefined))?.status === 200,
      { timeoutMs: 30_000, intervalMs: 50, signal: early.signal },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n--- output ---\n${handle.output().slice(-3_000)}`);
    });
  }

  /** Sends `signal` and waits (bounded) for the exit. */
  async signal(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitInfo> {
    const handle = this.handle;
    assert.ok(handle && !handle.hasExited(), `${this.name} is not running`);
    process.kill(handle.pid, signal);
    await pollUntil(`${this.incarnation} to exit after ${signal}`, () => handle.hasExited(), { timeoutMs, intervalMs: 10 });
    return handle.exited;
  }

  async kill(): Promise<void> {
    await this.handle?.stop("SIGKILL");
  }

  /** SIGTERM (a drain), SIGKILL after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    await this.handle?.stop("SIGTERM", timeoutMs);
  }

  /** Every JSON log line of every incarnation so far (a line cut by a SIGKILL is skipped). */
  async logLines(): Promise<LogLine[]> {
    const lines: LogLine[] = [];
    for (const { incarnation, file } of this.logFiles) {
      for (const text of (await readFile(file, "utf8").catch(() => "")).split("\n")) {
        if (!text.startsWith("{")) continue;
        try {
          lines.push({ incarnation, line: JSON.parse(text) as Record<string, unknown> });
        } catch {
          // cut short
        }
      }
    }
    return lines;
  }
}
