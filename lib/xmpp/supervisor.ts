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

/** A socket as `@xmpp/connection` attaches it: a net.Socket, or a TLS wrapper emitting the same events. */
interface EntitySocket extends EventEmitter {
  destroy?(): unknown;
}

/**
 * The members of `@xmpp/connection` 0.14's Connection (the base of both the client and the component) that
 * the supervisor replaces or calls to keep one connection's failure inside that connection. They are not in
 * the library's declared types, hence this view of the same object.
 */
interface ConnectionInternals {
  options: { service: string; domain: string; lang?: string };
  parser: { write(text: string): void } | null;
  connect(service: string): Promise<unknown>;
  open(opts: { domain: string; lang?: string | undefined }): Promise<unknown>;
  _attachSocket(socket: EntitySocket): void;
  _onData(data: Buffer | string): void;
  _onSeeOtherHost(error: Error): Promise<void>;
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
 *
 * No failure of the connection may reach the process (one device agent process carries a whole fleet, each
 * identity with a supervisor of its own): `contain()` closes the ways by which xmpp.js 0.14 lets one
 * connection's error become an uncaught exception, an unhandled `error` event or an unhandled rejection.
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
  private readonly internals: ConnectionInternals;
  /** Every socket the entity has attached and that has not closed yet (a STARTTLS upgrade makes two). */
  private readonly sockets = new Set<EntitySocket>();

  constructor(
    private readonly entity: SupervisedEntity,
    private readonly events: SupervisorEvents,
    backoff: BackoffOptions | RetryPolicy = DEFAULT_BACKOFF,
    private readonly attemptTimeoutMs = 10_000,
  ) {
    this.retry = "failed" in backoff ? backoff : backoffPolicy(backoff);
    this.internals = entity as unknown as ConnectionInternals;
    this.contain();
    entity.reconnect.stop();
    entity.on("error", (err: unknown) => {
      if (this.isOnline && (err as { condition?: string } | undefined)?.condition === "conflict") this.replaced = true;
      this.events.onEvent("error", { err: describe(err) });
    });
    entity.on("status", (status: string) => {
      this.ensureUtf8Decoding();
      if (status === "connecting") this.watchAttempt();
      if (status === "disconnecting") this.watchClosing();
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
      this.destroySockets();
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
      await this.firstAttempt();
    } catch {
      // The failure was emitted as `error` and the socket's close schedules the retry.
    }
  }

  /**
   * What `Connection.start()` does (connect, open the stream, wait for online), with the wait for online
   * observed whatever happens. The library's own start() creates `promise(this, "online")`, which also
   * rejects on the entity's next `error`, before it awaits `open()`; when open() fails (the socket reset or
   * closed before the server's stream header, or a 2 s open timeout under load) start() rejects and that
   * promise is left with nobody awaiting it: the connection's next error (ECONNRESET, a stream error) is
   * an unhandled rejection, which ends the whole process (@xmpp/connection/index.js, start(); the same in
   * 0.13 under @xmpp/component; reported upstream as an uncatchable TimeoutError, xmppjs/xmpp.js#849).
   * A `disconnect` before online ends the wait too (the library's would wait for ever): start() then
   * returns, and the retry it schedules goes on in the background.
   */
  private async firstAttempt(): Promise<void> {
    const entity = this.internals;
    if (this.entity.status !== "offline") throw new Error("Connection is not offline");
    let settle: { resolve(): void; reject(err: unknown): void } | undefined;
    const online = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    online.catch(() => undefined); // observed at once; awaited below only once the stream is open
    const onOnline = () => settle?.resolve();
    const onError = (err: unknown) => settle?.reject(err);
    const onDisconnect = () => settle?.reject(new Error("disconnected before online"));
    this.entity.once("online", onOnline);
    this.entity.once("error", onError);
    this.entity.once("disconnect", onDisconnect);
    try {
      const { service, domain, lang } = entity.options;
      await entity.connect(service);
      await entity.open({ domain, lang });
      await online;
    } finally {
      this.entity.off("online", onOnline);
      this.entity.off("error", onError);
      this.entity.off("disconnect", onDisconnect);
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
    this.destroySockets();
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

  /**
   * Keeps each failure of this connection inside it. Installed before the entity attaches its first socket
   * (Connection binds `_onData` and its socket listeners at the first `_attachSocket`). File references are
   * to @xmpp/connection 0.14.0 (the client's); 0.13.3 (the component's) has the same paths.
   *
   * - Parsing (`_onData`, @xmpp/connection/index.js). The library feeds every read to the parser, through
   *   the parser's synchronous events to every `element` listener, inside the socket's `data` event, so a
   *   throw anywhere there is an uncaught exception. Bytes that are not XML do throw: `</a>` before any
   *   element (@xmpp/xml/lib/Parser.js onEndElement reads `cursor.name` of null), a second XML error in the
   *   same read (the first one detaches the parser's `error` listener, so the second is an `error` event
   *   nobody listens to), `<stream:error/>` with no condition (StreamError.fromElement reads the name of a
   *   missing child). And once the parser is detached (after an XML error, or the server's `</stream:stream>`)
   *   any further read calls `write` on null (xmppjs/xmpp.js#860; upstream stops that after 0.14.0, #1100).
   *   Here, data after the end of the stream is not read (RFC 6120 §4.4: the stream is closed, only the TCP
   *   close remains), and a throw while parsing is this connection's error: reported as `error`, and the
   *   socket destroyed (→ `disconnect`, a retry), as for a stream that is not well-formed (§4.9.3.13). A
   *   throw from our own `element`/`stanza` listeners lands here too: it was that stanza's, on that
   *   connection, and costs that connection, not the process.
   * - Sockets (`_attachSocket`). Connection takes its listeners (`error` among them) off a socket once it
   *   gives it up, which it also does to a socket still open: `disconnect()` detaches it when the server does
   *   not close within the 2 s `_closeSocket` waits (a stream error or bad XML followed by silence). A reset
   *   arriving after that is an `error` event on a socket nobody listens to: an uncaught exception. Every
   *   socket therefore gets a listener of its own for its whole life, and every socket still open is
   *   destroyed once the connection is disconnected (nothing more will be read from or written to it).
   * - `see-other-host` (below).
   */
  private contain(): void {
    const entity = this.internals;
    entity._onData = (data: Buffer | string) => {
      const parser = entity.parser;
      if (!parser) return;
      try {
        const text = typeof data === "string" ? data : data.toString("utf8");
        this.entity.emit("input", text); // as @xmpp/connection 0.13 does (a debugging hook)
        parser.write(text);
      } catch (err) {
        this.entity.emit("error", err);
        this.entity.socket?.destroy?.();
      }
    };
    // RFC 6120 §4.9.3.19: the library reconnects to the host a `see-other-host` names, in an async function
    // nobody awaits (@xmpp/connection/index.js, _onStreamError), whose first step, parsing the host, throws
    // on text that is not a host: an unhandled rejection. That failure is this connection's error; the
    // stream error's own `disconnect` then schedules the usual retry.
    const seeOtherHost = entity._onSeeOtherHost.bind(entity);
    entity._onSeeOtherHost = (error: Error) => seeOtherHost(error).catch((err: unknown) => void this.entity.emit("error", err));
    const attach = entity._attachSocket.bind(entity);
    entity._attachSocket = (socket: EntitySocket) => {
      if (!this.sockets.has(socket)) {
        this.sockets.add(socket);
        // While Connection listens too, the error reaches the entity's `error` (and the log) through it; once
        // Connection has let the socket go, an error on it concerns nothing that is still running.
        socket.on("error", ignore);
        socket.once("close", () => this.sockets.delete(socket));
      }
      attach(socket);
    };
  }

  /** Destroys every socket of this connection still open; the one in use, if any, is kept. */
  private destroySockets(): void {
    for (const socket of this.sockets) {
      if (socket === this.entity.socket) continue;
      this.sockets.delete(socket);
      socket.destroy?.();
    }
  }

  /**
   * Closing a stream waits for the server to close the TCP connection (RFC 6120 §4.4), for the library's
   * `timeout` (2 s). After that, `@xmpp/connection` 0.13 (under `@xmpp/component`) swallows the timeout and
   * leaves the socket open and the entity `disconnecting` for ever: no `disconnect`, so no retry, and a
   * gateway off XMPP until restarted (after a stream error or bad XML from a server that then goes silent).
   * §4.4 lets the closing side end the TCP connection after a reasonable time: it is destroyed here if the
   * library has not let it go within twice its own wait.
   */
  private watchClosing(): void {
    const socket = this.entity.socket;
    const waitMs = 2 * ((this.entity as unknown as { timeout?: number }).timeout ?? 2_000);
    const timer = setTimeout(() => {
      if (this.entity.socket === socket && this.entity.status === "disconnecting") socket?.destroy?.();
    }, waitMs);
    timer.unref();
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

function ignore(): void {}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
