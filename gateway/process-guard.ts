import type { Logger } from "./log.js";
import type { Metrics } from "./metrics/metrics.js";

/**
 * What the process does with an error nothing else caught (README "Crash policy"). Both are bugs: every
 * error path of the gateway ends in a catalogue error, a cut response or a log line. They differ in what
 * they say about the process:
 *
 * - `uncaughtException`: a throw unwound a stack nobody expected to unwind, maybe halfway through updating
 *   state shared by every request (Node's docs: "it is not safe to resume normal operation after
 *   'uncaughtException'"). Logged at fatal and counted, then the gateway drains as on SIGTERM (new requests
 *   refused, those in flight given the drain time to finish, their exchanges failed cleanly after it), and
 *   the process exits 1 for its supervisor to restart it. Exiting at once would cut every request in flight
 *   for the sake of one; serving on would keep a process whose state is unknown. A hard deadline (the drain
 *   budget plus a margin) exits even if the drain itself hangs, and `process.exitCode` is set first, so
 *   however the process ends it does not report success.
 * - `unhandledRejection`: a promise rejected and nobody was listening. The code that rejected did run to its
 *   end (a rejection is a value, not an unwound stack): nothing was left halfway. Logged at error and
 *   counted, and the process serves on; Node's default (throw, ending the process) would end every request
 *   in flight for a lost error value.
 *
 * The log line carries the error (message and stack), not the request id: the failing code's request is
 * rarely known at this level (timers and socket events run outside any request's context), and tracking one
 * (AsyncLocalStorage on every request) costs more than the rare bug it would help to find.
 */
export interface ProcessGuardDeps {
  logger: Logger;
  metrics: Pick<Metrics, "unexpectedErrors">;
  /** The graceful drain (the same as on SIGTERM): resolves when the gateway has stopped. */
  drain(): Promise<void>;
  exit(code: number): void;
  /** The drain's own budget plus a margin: the process exits by then whatever the drain does. */
  hardExitAfterMs: number;
  setExitCode(code: number): void;
}

export type UnexpectedKind = "uncaught_exception" | "unhandled_rejection";

export class ProcessGuard {
  private dying = false;

  constructor(private readonly deps: ProcessGuardDeps) {
    for (const kind of ["uncaught_exception", "unhandled_rejection"] as const) deps.metrics.unexpectedErrors.inc({ kind }, 0);
  }

  /** True once an uncaught exception started the way out. */
  get exiting(): boolean {
    return this.dying;
  }

  onUncaughtException(err: unknown): void {
    const { logger, metrics } = this.deps;
    metrics.unexpectedErrors.inc({ kind: "uncaught_exception" });
    logger.fatal({ event: "uncaught-exception", err, exiting: true }, "uncaught exception: draining, then exiting");
    if (this.dying) return;
    this.dying = true;
    this.deps.setExitCode(1);
    const hard = setTimeout(() => this.deps.exit(1), this.deps.hardExitAfterMs);
    let drain: Promise<void>;
    try {
      drain = this.deps.drain();
    } catch (drainErr) {
      drain = Promise.reject(drainErr instanceof Error ? drainErr : new Error(String(drainErr)));
    }
    drain.then(
      () => {
        clearTimeout(hard);
        this.deps.exit(1);
      },
      (drainErr: unknown) => {
        logger.error({ event: "drain-failed", err: drainErr }, "drain after an uncaught exception failed");
        clearTimeout(hard);
        this.deps.exit(1);
      },
    );
  }

  onUnhandledRejection(reason: unknown): void {
    this.deps.metrics.unexpectedErrors.inc({ kind: "unhandled_rejection" });
    this.deps.logger.error({ event: "unhandled-rejection", err: reason }, "unhandled promise rejection: serving on");
  }
}

/** The events the guard listens to: `process`, or a stand-in in tests. */
export interface ProcessEvents {
  on(event: "uncaughtException", listener: (err: Error) => void): unknown;
  on(event: "unhandledRejection", listener: (reason: unknown) => void): unknown;
  off(event: "uncaughtException", listener: (err: Error) => void): unknown;
  off(event: "unhandledRejection", listener: (reason: unknown) => void): unknown;
}

/** Installs the guard's listeners (replacing Node's defaults); returns what removes them. */
export function installProcessGuard(proc: ProcessEvents, guard: ProcessGuard): () => void {
  const onException = (err: Error) => guard.onUncaughtException(err);
  const onRejection = (reason: unknown) => guard.onUnhandledRejection(reason);
  proc.on("uncaughtException", onException);
  proc.on("unhandledRejection", onRejection);
  return () => {
    proc.off("uncaughtException", onException);
    proc.off("unhandledRejection", onRejection);
  };
}
