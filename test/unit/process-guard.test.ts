/**
 * The crash policy (gateway/process-guard.ts): an uncaught exception is logged, counted, drained and ends
 * the process non-zero, once; an unhandled rejection is logged and counted, and the process serves on.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, it, mock } from "node:test";
import { Writable } from "node:stream";
import { Registry } from "prom-client";
import { pino } from "pino";
import { createMetrics, type Metrics } from "../../gateway/metrics/metrics.js";
import { installProcessGuard, ProcessGuard } from "../../gateway/process-guard.js";

interface Harness {
  guard: ProcessGuard;
  metrics: Metrics;
  lines: Array<Record<string, unknown>>;
  exits: number[];
  exitCodes: number[];
  drains: number;
  finishDrain(err?: Error): void;
}

function harness(hardExitAfterMs = 60_000): Harness {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  });
  const metrics = createMetrics(new Registry());
  let settle: (err?: Error) => void = () => undefined;
  const h: Harness = {
    guard: undefined as unknown as ProcessGuard,
    metrics,
    lines,
    exits: [],
    exitCodes: [],
    drains: 0,
    finishDrain: (err) => settle(err),
  };
  h.guard = new ProcessGuard({
    logger: pino({ level: "info" }, sink),
    metrics,
    drain: () => {
      h.drains++;
      return new Promise<void>((resolve, reject) => {
        settle = (err) => (err ? reject(err) : resolve());
      });
    },
    exit: (code) => h.exits.push(code),
    setExitCode: (code) => h.exitCodes.push(code),
    hardExitAfterMs,
  });
  return h;
}

async function count(metrics: Metrics, kind: string): Promise<number> {
  return (await metrics.unexpectedErrors.get()).values.find((v) => v.labels.kind === kind)?.value ?? -1;
}

/** Lets the promise callbacks run (no time passes). */
const microtasks = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("ProcessGuard", () => {
  it("has both series at 0 from the start", async () => {
    const h = harness();
    assert.equal(await count(h.metrics, "uncaught_exception"), 0);
    assert.equal(await count(h.metrics, "unhandled_rejection"), 0);
  });

  it("an uncaught exception: logged at fatal with its stack, counted, exit code set, drained, then exit 1", async () => {
    const h = harness();
    h.guard.onUncaughtException(new Error("boom"));
    assert.equal(await count(h.metrics, "uncaught_exception"), 1);
    const line = h.lines.find((l) => l.event === "uncaught-exception");
    assert.equal(line?.level, 60);
    assert.match(String((line?.err as { stack?: string })?.stack), /boom/);
    assert.deepEqual(h.exitCodes, [1]);
    assert.equal(h.drains, 1);
    assert.equal(h.guard.exiting, true);
    assert.deepEqual(h.exits, [], "not before the drain is over");
    h.finishDrain();
    await microtasks();
    assert.deepEqual(h.exits, [1]);
  });

  it("a second uncaught exception while draining is counted and logged, but starts no second drain", async () => {
    const h = harness();
    h.guard.onUncaughtException(new Error("one"));
    h.guard.onUncaughtException("two");
    assert.equal(await count(h.metrics, "uncaught_exception"), 2);
    assert.equal(h.drains, 1);
    h.finishDrain();
    await microtasks();
    assert.deepEqual(h.exits, [1]);
  });

  it("a drain that fails still exits 1, and says why", async () => {
    const h = harness();
    h.guard.onUncaughtException(new Error("boom"));
    h.finishDrain(new Error("redis gone"));
    await microtasks();
    assert.deepEqual(h.exits, [1]);
    assert.ok(h.lines.some((l) => l.event === "drain-failed"));
  });

  it("a drain that hangs: exit 1 at the hard deadline", () => {
    mock.timers.enable({ apis: ["setTimeout"] });
    try {
      const h = harness(30_000);
      h.guard.onUncaughtException(new Error("boom"));
      mock.timers.tick(29_999);
      assert.deepEqual(h.exits, []);
      mock.timers.tick(1);
      assert.deepEqual(h.exits, [1]);
    } finally {
      mock.timers.reset();
    }
  });

  it("an unhandled rejection: logged at error, counted, and the process serves on (no drain, no exit)", async () => {
    const h = harness();
    h.guard.onUnhandledRejection(new Error("lost"));
    h.guard.onUnhandledRejection(undefined);
    assert.equal(await count(h.metrics, "unhandled_rejection"), 2);
    assert.equal(h.lines.filter((l) => l.event === "unhandled-rejection" && l.level === 50).length, 2);
    assert.equal(h.drains, 0);
    assert.deepEqual(h.exits, []);
    assert.deepEqual(h.exitCodes, []);
    assert.equal(h.guard.exiting, false);
  });
});

describe("installProcessGuard", () => {
  it("routes the process's two events to the guard, and takes its listeners off again", async () => {
    const h = harness();
    const proc = new EventEmitter();
    const uninstall = installProcessGuard(proc, h.guard);
    proc.emit("unhandledRejection", new Error("lost"), Promise.resolve());
    proc.emit("uncaughtException", new Error("boom"));
    assert.equal(await count(h.metrics, "unhandled_rejection"), 1);
    assert.equal(await count(h.metrics, "uncaught_exception"), 1);
    h.finishDrain();
    uninstall();
    assert.equal(proc.listenerCount("uncaughtException") + proc.listenerCount("unhandledRejection"), 0);
  });
});

describe("the guard on a real process", () => {
  it("an unhandled rejection leaves it serving; an uncaught exception drains it and it exits 1", async () => {
    const { spawn } = await import("node:child_process");
    const { fileURLToPath } = await import("node:url");
    const guardModule = fileURLToPath(new URL("../../gateway/process-guard.ts", import.meta.url));
    const metricsModule = fileURLToPath(new URL("../../gateway/metrics/metrics.ts", import.meta.url));
    const script = `
      const { installProcessGuard, ProcessGuard } = await import(${JSON.stringify(guardModule)});
      const { createMetrics } = await import(${JSON.stringify(metricsModule)});
      const { pino } = await import("pino");
      const logger = pino({ level: "info" }, pino.destination({ dest: 1, sync: true }));
      const guard = new ProcessGuard({
        logger, metrics: createMetrics(), hardExitAfterMs: 30000,
        drain: async () => logger.info({ event: "drained" }),
        exit: (code) => process.exit(code), setExitCode: (code) => { process.exitCode = code; },
      });
      installProcessGuard(process, guard);
      Promise.reject(new Error("nobody listens"));
      setImmediate(() => setImmediate(() => {
        logger.info({ event: "still-serving" });
        throw new Error("nobody catches");
      }));
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    const events = out
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => (JSON.parse(l) as { event?: string }).event);
    assert.equal(code, 1, out);
    assert.deepEqual(events, ["unhandled-rejection", "still-serving", "uncaught-exception", "drained"], out);
  });
});
