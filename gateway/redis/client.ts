import { Redis } from "ioredis";
import { Backoff } from "../../lib/backoff.js";
import { RedisKeys } from "./keys.js";
import { closeConnection, RedisSubscriber } from "./subscriber.js";
import { GatewayError } from "../errors.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";

export interface RedisOptions {
  /** `redis://` or `rediss://` (TLS); user and password in it are used unless given below. */
  url: string;
  keyPrefix: string;
  /** A command that gets no answer within this bound fails (a hung Redis must not hang requests). */
  commandTimeoutMs: number;
  /** A Redis 6+ ACL user. */
  username?: string;
  password?: string;
  /** PEM text of the CAs trusted for `rediss://` (else Node's default roots); the certificate is always verified. */
  tlsCa?: string;
}

/**
 * The gateway's one door to ioredis. Commands never wait for a connection: with the offline queue off, a
 * command while Redis is down fails at once and becomes 503 GW_STORE_UNAVAILABLE, and the client keeps
 * reconnecting (jittered backoff) until Redis returns, with no restart of the gateway.
 */
export class RedisStore implements Lifecycle {
  readonly client: Redis;
  /** Every key and channel name (keys.ts). */
  readonly keys: RedisKeys;
  private readonly log: Logger;

  constructor(opts: RedisOptions, deps: { logger: Logger; onReadyChange?: (ready: boolean) => void }) {
    this.log = deps.logger.child({ component: "redis" });
    this.keys = new RedisKeys(opts.keyPrefix);
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    this.client = new Redis(opts.url, {
      lazyConnect: true,
      // Commands issued in the same tick share one write: with many exchanges in flight, the correlation
      // SET/DEL pairs were a socket write each (about a sixth of the gateway's CPU under load).
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs,
      connectTimeout: 5000,
      retryStrategy: () => backoff.next(),
      ...(opts.username !== undefined ? { username: opts.username } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      ...(opts.url.startsWith("rediss:") ? { tls: opts.tlsCa !== undefined ? { ca: opts.tlsCa } : {} } : {}),
    });
    this.client.on("ready", () => {
      backoff.reset();
      this.log.info({ event: "ready" }, "redis ready");
      deps.onReadyChange?.(true);
    });
    this.client.on("close", () => deps.onReadyChange?.(false));
    // ioredis reports every failed reconnect here; without a listener it prints to stderr.
    this.client.on("error", (err: Error) => this.log.warn({ event: "error", err: err.message }, "redis error"));
  }

  get ready(): boolean {
    return this.client.status === "ready";
  }

  async start(): Promise<void> {
    try {
      await this.client.connect();
    } catch (err) {
      // Not fatal: the gateway starts unready and the client keeps retrying.
      this.log.warn({ event: "connect-failed", err: (err as Error).message }, "redis not reachable at start");
    }
  }

  async stop(): Promise<void> {
    await closeConnection(this.client);
  }

  /**
   * A subscriber of its own (a connection with the same settings, in subscriber mode, in which it can do
   * nothing else); its owner starts and stops it.
   */
  subscriber(logger: Logger, onResubscribed?: () => void): RedisSubscriber {
    return new RedisSubscriber(this.client.duplicate(), logger, onResubscribed);
  }

  /**
   * A Lua script as a function: sent once and then run by its SHA (ioredis' defineCommand falls back to
   * EVAL when Redis lost it), with failures as GW_STORE_UNAVAILABLE like every other command. Arguments are
   * the `numberOfKeys` keys first, then the script's ARGV.
   */
  script<R>(name: string, numberOfKeys: number, lua: string): (...args: Array<string | number>) => Promise<R> {
    this.client.defineCommand(name, { numberOfKeys, lua });
    const command = (this.client as unknown as Record<string, (...args: Array<string | number>) => Promise<R>>)[name];
    if (!command) throw new Error(`ioredis did not define the script command ${name}`);
    return (...args) => this.run(() => command.apply(this.client, args));
  }

  /** Runs one command; any Redis failure becomes the catalogue's GW_STORE_UNAVAILABLE. */
  async run<T>(command: (client: Redis) => Promise<T>): Promise<T> {
    try {
      return await command(this.client);
    } catch (err) {
      throw new GatewayError("GW_STORE_UNAVAILABLE", { cause: err });
    }
  }
}
