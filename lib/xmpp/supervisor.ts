import type { EventEmitter } from "node:events";
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from "../backoff.js";

/** The part of an xmpp.js entity (client or component) that supervision needs. */
export interface SupervisedEntity extends EventEmitter {
  status: string;
  socket: { setEncoding?(enc: BufferEncoding): unknown; destroy?(): unknown } | null;
  start(): Promise<unknown>;
  stop(): Promise<unknown>;
  reconnect: { stop(): void; reconnect(): Promise<void> };
}

/**
 * When and where the next attempt goes. The default is lib/backoff.ts alone, to one server; the device agent's
 * rotation over several servers (adapters/device-agent/servers.ts) is another.
 */
export interface RetryPolicy {
  /** Runs before every attempt, the first included (e.g. points the entity at the next server); must not throw. */
  beforeAttempt?(): Promise<void>;
  /** An attempt reached online. */
  succeeded(): void;
  /** An attempt failed or an online connection was lost: the delay before the next attempt. */
  failed(): number;
  /** Fields for the `retry` log line. */
  describe(): Record<string, unknown>;
}

/** One server, jittered exponential backoff between attempts (lib/backoff.ts). */
export function backoffPolicy(opts: BackoffOptions = DEFAULT_BACKOFF): RetryPolicy {
  const backoff = new Backoff(opts);
  return {
    succeeded: () => backoff.reset(),
    failed: () => backoff.next(),
    describe: () => ({ attempt: backoff.attempts }),
  };
}

export interface SupervisorEvents {
  /** A state change worth a log line: online, offline, retry scheduled, error. */
  onEvent(event: "online" | "offline" | "retry" | "error" | "replaced", fields: Record<string, unknown>): void;
  onOnlineChange?(online: boolean): void;
}

/**
 * Keeps one xmpp.js connection up. It replaces the library's fixed 1 s reconnect with jittered exponential
 * backoff (so instances that lose the server together do not return together, and a standby component
 * refused with `conflict` does not hammer the server), sinks `error` events (an unhandled one would crash
 * the process), and makes sockets decode UTF-8 across reads: xmpp.js turns every TCP read into text on its
 * own, which corrupts a multi-byte character split over two reads.
 *
 * One loss is final: a `conflict` stream error while online means the server gave our address to a newer
 * connection (RFC 6120 §4.9.3.3; Prosody's `component_conflict_resolve = "kick_old"` during a rolling
 * replacement). Reconnecting would kick the newcomer, which would kick us back: two instances flapping.
 * So a replaced connection stays down until `start()` is called again. A `conflict` before we are online
 * (the server keeps the older connection: `kick_new`) is a standby's normal retry.
 *
 * Every attempt must end online or disconnected within a bound: xmpp.js lets an attempt that fails after
 * the TCP connect (a server still starting, a stream that never opens, a login that hangs) leave its
 * socket open, and without a `disconnect` no retry would ever follow. The watchdog closes such a socket.
 */
export class ConnectionSupervisor {
  private readonly retry: RetryPolicy;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private replaced = false;
  private isOnline = false;
  private readonly decodedSockets = new WeakSet<object>();
  private waiters: Array<() => void> = [];
  private watchdog: NodeJS.Timeout | undefined;

  constructor(
    private readonly entity: SupervisedEntity,
    private readonly events: SupervisorEvents,
    backoff: BackoffOptions | RetryPolicy = DEFAULT_BACKOFF,
    private readonly attemptTimeoutMs = 10_000,
  ) {
    this.retry = "failed" in backoff ? backoff : backoffPolicy(backoff);
    entity.reconnect.stop();
    entity.on("error", (err: unknown) => {
      if (this.isOnline && (err as { condition?: string } | undefined)?.condition === "conflict") this.replaced = true;
      this.events.onEvent("error", { err: describe(err) });
    });
    entity.on("status", (status: string) => {
      this.ensureUtf8Decoding();
      if (status === "connecting") this.watchAttempt();
    });
    entity.on("online", () => {
      clearTimeout(this.watchdog);
      this.retry.succeeded();
      this.setOnline(true);
      this.events.onEvent("online", {});
      for (const w of this.waiters.splice(0)) w();
    });
    entity.on("disconnect", () => {
      clearTimeout(this.watchdog);
      if (this.isOnline) this.events.onEvent("offline", {});
      this.setOnline(false);
      if (this.replaced) this.events.onEvent("replaced", { reconnect: false });
      else this.scheduleReconnect();
    });
  }

  get online(): boolean {
    return this.isOnline;
  }

  /** Starts connecting; does not wait for success (retries go on in the background). */
  async start(): Promise<void> {
    this.stopping = false;
    this.replaced = false;
    await this.retry.beforeAttempt?.();
    try {
      await this.entity.start();
    } catch {
      // The failure was emitted as `error` and the socket's close schedules the retry.
    }
  }

  waitOnline(timeoutMs: number): Promise<void> {
    if (this.isOnline) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`not online after ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.watchdog);
    clearTimeout(this.timer);
    this.timer = undefined;
    const wasOnline = this.isOnline;
    this.setOnline(false);
    if (this.entity.status === "offline") return;
    try {
      await this.entity.stop();
    } catch {
      // Closing a half-open stream can fail; the socket is gone either way.
    }
    if (wasOnline) this.events.onEvent("offline", { reason: "stopped" });
  }

  private setOnline(online: boolean): void {
    if (online === this.isOnline) return;
    this.isOnline = online;
    this.events.onOnlineChange?.(online);
  }

  private scheduleReconnect(): void {
    if (this.stopping || this.timer) return;
    const delayMs = this.retry.failed();
    this.events.onEvent("retry", { delayMs, ...this.retry.describe() });
    this.timer = setTimeout(() => {
      void (async () => {
        await this.retry.beforeAttempt?.();
        this.timer = undefined;
        if (this.stopping || this.entity.status !== "disconnect") return;
        this.entity.reconnect.reconnect().catch(() => {
          // Emitted as `error`; the next `disconnect` schedules another attempt.
        });
      })();
    }, delayMs);
    // Not unref'd: while disconnected this timer may be all that keeps a device agent process alive.
  }

  /** An attempt that is neither online nor disconnected in time gets its socket closed (→ `disconnect`). */
  private watchAttempt(): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.stopping || this.isOnline) return;
      this.events.onEvent("error", { err: `not online ${this.attemptTimeoutMs} ms after connecting; closing the socket to retry` });
      this.entity.socket?.destroy?.();
    }, this.attemptTimeoutMs);
    this.watchdog.unref();
  }

  private ensureUtf8Decoding(): void {
    const socket = this.entity.socket;
    if (!socket || this.decodedSockets.has(socket) || typeof socket.setEncoding !== "function") return;
    socket.setEncoding("utf8");
    this.decodedSockets.add(socket);
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
