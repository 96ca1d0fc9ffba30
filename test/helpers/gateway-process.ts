// A gateway as operators run it: its own process (`gateway/main.ts`, or a compiled `dist/gateway/main.js`),
// its own port, scraped over HTTP. One starter for every test that needs one: startGatewayProcess() for a
// gateway that runs once, GatewayIncarnations for one that is killed and started again on the same port.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Env } from "../../lib/env.js";
import { freePort, onFreePorts, pollUntil, PortTaken } from "../../local-stack/ports.js";
import { spawnChild, type ChildHandle, type ExitInfo } from "../../local-stack/process.js";
import { gatewayEnv, type GatewayTargets } from "./gateway.js";
import { scrapeMetric } from "./metrics.js";
import { startStack, type Teardown } from "./stack.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

export interface GatewayProcess {
  child: ChildHandle;
  port: number;
  url: string;
  /** One sample from its /metrics, by name and labels, e.g. metric('gateway_replies_forwarded_total', { kind: 'iq' }). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export interface GatewayProcessOptions {
  /**
   * The port to listen on. Default: port 0, the port the kernel picked read back from the gateway's "started"
   * log line. A given port is for a process started again on the port of the one before it.
   */
  port?: number;
  /** Node's arguments that start the gateway (e.g. a compiled `dist/gateway/main.js`); default: its sources through tsx. */
  nodeArgs?: readonly string[];
  /** Its working directory; default: the repository. */
  cwd?: string;
  /** Used in messages; default `gateway-<GATEWAY_INSTANCE_ID or port>`. */
  name?: string;
  /** Also append its output to this file (kept whole). */
  logFile?: string;
  /** What the start waits for: `ready` (/readyz 200, the default), or `listening` (/healthz 200: a hot standby, or a gateway without Redis, is never ready). */
  waitFor?: "ready" | "listening";
}

/** Log levels that hide the info-level "started" line, which is where a gateway on port 0 tells its port. */
const QUIETER_THAN_INFO = new Set(["warn", "error", "fatal", "silent"]);

/**
 * Polls the gateway's /readyz (or /healthz) until it answers 200. An exit first is thrown, as PortTaken when
 * the port was bound by someone else between our probe and the gateway's listen (a free port is only free until then).
 */
export async function waitGatewayReady(child: ChildHandle, url: string, waitFor: "ready" | "listening" = "ready"): Promise<void> {
  const early = new AbortController();
  void child.exited.then(() => early.abort());
  const endpoint = waitFor === "ready" ? "readyz" : "healthz";
  try {
    await pollUntil(
      `${child.name} on ${url} ${waitFor}`,
      async () => (await fetch(`${url}/${endpoint}`).catch(() => undefined))?.status === 200,
      {
        timeoutMs: 30_000,
        intervalMs: 50,
        signal: early.signal,
      },
    );
  } catch (err) {
    if (!child.hasExited()) throw new Error(`${(err as Error).message}\n--- output ---\n${child.output().slice(-3_000)}`, { cause: err });
    const message = `${child.name} exited:\n${child.output()}`;
    throw /EADDRINUSE/.test(child.output()) ? new PortTaken(message) : new Error(message, { cause: err });
  }
}

/**
 * The port a gateway started with GATEWAY_PORT=0 listens on, read back from its "gateway listening" log line
 * (LOG_LEVEL info or lower). Throws if the process exits first.
 */
export async function listenedPort(child: ChildHandle): Promise<number> {
  const early = new AbortController();
  void child.exited.then(() => early.abort());
  try {
    return await pollUntil(
      `${child.name}: its "gateway listening" log line`,
      () => {
        const line = child
          .output()
          .split("\n")
          .find((l) => l.includes('"event":"started"'));
        const port = line === undefined ? undefined : (JSON.parse(line) as { port?: unknown }).port;
        return typeof port === "number" && port > 0 ? port : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50, signal: early.signal },
    );
  } catch (err) {
    if (child.hasExited()) throw new Error(`${child.name} exited:\n${child.output()}`, { cause: err });
    throw err;
  }
}

/** Spawns one gateway on `port` (0: read back) with the complete environment `env`, and waits for it. */
async function launch(env: Env, port: number, opts: GatewayProcessOptions): Promise<{ child: ChildHandle; port: number; url: string }> {
  const child = await spawnChild(process.execPath, [...(opts.nodeArgs ?? ["--import", "tsx", "gateway/main.ts"])], {
    name: opts.name ?? `gateway-${env.GATEWAY_INSTANCE_ID ?? port}`,
    cwd: opts.cwd ?? ROOT,
    env: { ...env, GATEWAY_PORT: String(port) },
    ...(opts.logFile !== undefined ? { logFile: opts.logFile } : {}),
  });
  try {
    const listening = port === 0 ? await listenedPort(child) : port;
    const url = `http://127.0.0.1:${listening}`;
    await waitGatewayReady(child, url, opts.waitFor);
    return { child, port: listening, url };
  } catch (err) {
    await child.stop();
    throw err;
  }
}

/** Starts a gateway process with `env` (complete: see gatewayEnv), on the port `opts` asks for. */
async function startWithEnv(env: Env, opts: GatewayProcessOptions): Promise<GatewayProcess> {
  let started: { child: ChildHandle; port: number; url: string };
  if (opts.port !== undefined) {
    started = await launch(env, opts.port, opts);
  } else if (!QUIETER_THAN_INFO.has(env.LOG_LEVEL ?? "info")) {
    started = await launch(env, 0, opts);
  } else {
    // A quieter log level hides the port a port-0 gateway would tell (bench/ runs it silent, so its logs cost
    // nothing): a probed free port, probed again if someone took it before the gateway's listen.
    started = await onFreePorts(async () => launch(env, await freePort(), opts));
  }
  const { child, port, url } = started;
  return { child, port, url, metric: (name, labels = {}) => scrapeMetric(url, name, labels), stop: () => child.stop() };
}

/**
 * Starts a gateway process against `targets` (gatewayEnv plus `overrides`) and waits until it is ready.
 * The third argument is the options, or (the older form, kept for bench/) a port followed by the options.
 */
export async function startGatewayProcess(
  targets: GatewayTargets,
  overrides: Env = {},
  options?: GatewayProcessOptions | number,
  more: GatewayProcessOptions = {},
): Promise<GatewayProcess> {
  // No default for `options`: one would stand in for an `undefined` given in its place, and `more` (the
  // compiled build's nodeArgs of the bench's soak run) would be dropped, running the sources through tsx.
  const opts: GatewayProcessOptions =
    typeof options === "object" ? { ...more, ...options } : { ...more, ...(options !== undefined ? { port: options } : {}) };
  return startWithEnv(gatewayEnv(targets, overrides), opts);
}

export interface LogLine {
  incarnation: string;
  line: Record<string, unknown>;
}

/**
 * One gateway instance as an operator's process manager sees it: started, killed and started again on the
 * same port, each run (an incarnation: `ga.1`, `ga.2`, ...) logging to a file of its own, so that tests can
 * tell which incarnation answered what. The first incarnation listens on port 0 (LOG_LEVEL info or lower, so
 * that it tells its port); the later ones on the port it got, as a restarted instance keeps its address.
 */
export class GatewayIncarnations {
  handle: ChildHandle | undefined;
  incarnation = "";
  /** Every incarnation's PID, for a check that none is left behind. */
  readonly pids: number[] = [];
  private readonly logFiles: Array<{ incarnation: string; file: string }> = [];
  private count = 0;
  private listening: number | undefined;

  constructor(
    readonly name: string,
    /** The complete environment of an incarnation (see gatewayEnv), given its name (use it as GATEWAY_INSTANCE_ID); GATEWAY_PORT is set here. */
    private readonly env: (incarnation: string) => Env,
    private readonly logDir: string,
    private readonly opts: Pick<GatewayProcessOptions, "waitFor" | "nodeArgs">,
  ) {}

  /** The port every incarnation listens on, known once the first one has started. */
  get port(): number {
    assert.ok(this.listening !== undefined, `${this.name} has not started yet`);
    return this.listening;
  }

  /** The names of the incarnations started so far. */
  get incarnations(): string[] {
    return this.logFiles.map((f) => f.incarnation);
  }

  async start(): Promise<void> {
    this.incarnation = `${this.name}.${++this.count}`;
    const logFile = `${this.logDir}/${this.incarnation}.log`;
    const env = this.env(this.incarnation);
    assert.ok(
      this.listening !== undefined || !QUIETER_THAN_INFO.has(env.LOG_LEVEL ?? "info"),
      `${this.name}: LOG_LEVEL ${env.LOG_LEVEL} hides the port it listens on`,
    );
    this.logFiles.push({ incarnation: this.incarnation, file: logFile });
    const started = await startWithEnv(env, { ...this.opts, port: this.listening ?? 0, name: `gateway ${this.incarnation}`, logFile });
    this.handle = started.child;
    this.pids.push(started.child.pid);
    this.listening = started.port;
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

/**
 * A gateway process against a whole harness stack of its own (both stopped by `teardown`), for the deploy tests
 * that need one running: the image's health check is run against it, and its scrape is what the dashboard and
 * the alerts must match. It has been sent one request, so that the request series exist.
 */
export async function startGatewayWithStack(teardown: Teardown, opts: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const stack = teardown.stopLater("stack", await startStack());
  const gw = teardown.stopLater("gateway", await startGatewayProcess(stack, { GATEWAY_DRAIN_TIMEOUT_MS: "1000", LOG_LEVEL: "info" }, opts));
  await fetch(`${gw.url}/devices/nobody/x`);
  return gw;
}
