import { Cluster, Redis, SentinelConnector, type RedisOptions as IoRedisOptions, type SentinelConnectionOptions } from "ioredis";
import { Backoff } from "../../lib/backoff.js";
import { RedisKeys } from "./keys.js";
import type { HostPort } from "./host-ports.js";
import { assertOneSlot, type ScriptItem } from "./slots.js";
import { keepConnected } from "./keep-connected.js";
import { ReplicaAcks } from "./replica-acks.js";
import { closeConnection, RedisSubscriber } from "./subscriber.js";
import { GatewayError } from "../errors.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";

/** A connection to one node (or a Sentinel-followed primary), or to a Redis Cluster: the same commands. */
export type RedisClient = Redis | Cluster;

/** A connection to one node (or to the primary Sentinel names): what a Cluster is not. */
export type NodeClient = Redis;

/** Whether `client` is a connection to one node rather than to a Cluster. */
export function isNodeClient(client: RedisClient): client is NodeClient {
  return client instanceof Redis;
}

export interface RedisOptions {
  /**
   * Writes made durable (`durable()`, scripts defined with `{ durable: true }`) must reach this many replicas
   * within `timeoutMs` before the gateway acts on them (replica-acks.ts). Absent or 0 replicas: off.
   */
  waitReplicas?: { replicas: number; timeoutMs: number };
  /**
   * The name every connection gives itself (CLIENT SETNAME), so that CLIENT LIST shows whose it is; characters
   * Redis refuses in a name (spaces, newlines) become `_`.
   */
  connectionName?: string;
  /** `redis://` or `rediss://` (TLS); user and password in it are used unless given below. Unused with `sentinel` or `cluster`. */
  url: string;
  keyPrefix: string;
  /** A command that gets no answer within this bound fails (a hung Redis must not hang requests). */
  commandTimeoutMs: number;
  /** A Redis 6+ ACL user. */
  username?: string;
  password?: string;
  /** PEM text of the CAs trusted for `rediss://` (else Node's default roots); the certificate is always verified. */
  tlsCa?: string;
  /**
   * Sentinel mode: the primary is whichever node these Sentinels name for `name`; `username`/`password`
   * above are the data nodes', `password` here the Sentinels' own; `tls` is TLS (with `tlsCa`) to both.
   */
  sentinel?: { name: string; sentinels: HostPort[]; password?: string; tls: boolean };
  /**
   * Cluster mode: `nodes` are seeds (the others are learnt by CLUSTER SLOTS); `username`/`password` above
   * are every node's; `tls` is TLS (with `tlsCa`) to every node.
   */
  cluster?: { nodes: HostPort[]; tls: boolean };
}

/**
 * The gateway's one door to ioredis. Commands never wait for a connection: with the offline queue off, a
 * command while Redis is down fails at once and becomes 503 GW_STORE_UNAVAILABLE, and the client keeps
 * reconnecting (jittered backoff) until Redis returns, with no restart of the gateway.
 */
export class RedisStore implements Lifecycle {
  readonly client: RedisClient;
  /** Every key and channel name (keys.ts). */
  readonly keys: RedisKeys;
  /** Connects again a connection ioredis gave up on its own (keep-connected.ts); stopped by stop(). */
  private readonly keepers: Array<{ stop(): void }> = [];
  private readonly reconnectDelay: () => number;
  /** Where durable writes go, when REDIS_WAIT_REPLICAS asks for replicas' acknowledgements. */
  private readonly acks: ReplicaAcks | undefined;
  /**
   * The command a Lua script must publish with: in Cluster mode the gateway's subscribers listen with
   * SSUBSCRIBE on the shard owning the channel, which a PUBLISH never reaches (see `publish`); the channel
   * must then be one of the script's KEYS, in the slot of the others.
   */
  readonly publishCommand: "PUBLISH" | "SPUBLISH";
  private readonly log: Logger;

  constructor(opts: RedisOptions, deps: { logger: Logger; onReadyChange?: (ready: boolean) => void }) {
    this.log = deps.logger.child({ component: "redis" });
    this.keys = new RedisKeys(opts.keyPrefix);
    const backoff = new Backoff({ initialMs: 100, maxMs: 5000 });
    const auth = {
      ...(opts.username !== undefined ? { username: opts.username } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
    };
    const named = opts.connectionName !== undefined ? { connectionName: opts.connectionName.replace(/[^\x21-\x7e]/g, "_") } : {};
    const common: IoRedisOptions = {
      lazyConnect: true,
      // Commands issued in the same tick share one write: with many exchanges in flight, the correlation
      // SET/DEL pairs were a socket write each (about a sixth of the gateway's CPU under load).
      enableAutoPipelining: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: opts.commandTimeoutMs,
      connectTimeout: 5000,
      retryStrategy: () => backoff.next(),
      ...auth,
      ...named,
    };
    const tls = opts.tlsCa !== undefined ? { ca: opts.tlsCa } : {};
    const sentinel = opts.sentinel;
    const cluster = opts.cluster;
    this.publishCommand = cluster ? "SPUBLISH" : "PUBLISH";
    const sentinelError = (err: Error): void => this.log.warn({ event: "sentinel-error", err: err.message }, "redis sentinel error");
    this.client = cluster
      ? new Cluster(cluster.nodes, {
          lazyConnect: true,
          enableAutoPipelining: true,
          // Off as for one node: a command while the Cluster is down fails at once. Not in redisOptions: each
          // node's connection is opened by its first command, which an off offline queue there would refuse.
          enableOfflineQueue: false,
          // Writes and reads on primaries only: a replica may lag behind what this gateway just wrote.
          scaleReads: "master",
          // SSUBSCRIBE on a connection per shard (ClusterSubscriberGroup), kept apart from the command
          // connections and moved by ioredis when a slot's primary changes (docs/architecture.md, Redis).
          shardedSubscribers: true,
          clusterRetryStrategy: () => backoff.next(),
          redisOptions: {
            commandTimeout: opts.commandTimeoutMs,
            connectTimeout: 5000,
            maxRetriesPerRequest: 0,
            ...auth,
            ...named,
            ...(cluster.tls ? { tls } : {}),
          },
        })
      : sentinel
        ? new Redis({
            ...common,
            sentinels: sentinel.sentinels,
            name: sentinel.name,
            ...(sentinel.password !== undefined ? { sentinelPassword: sentinel.password } : {}),
            // The same backoff between rounds of asking the Sentinels as between reconnects: while no Sentinel
            // answers (or each still names the lost primary), commands fail at once (offline queue off).
            sentinelRetryStrategy: () => backoff.next(),
            // Subscribes to +switch-master on the Sentinels: a primary demoted by a failover (SENTINEL
            // FAILOVER, a partition healed) is left at once, instead of when writes start failing with READONLY.
            failoverDetector: true,
            Connector: listenedSentinelConnector(sentinelError, named.connectionName),
            ...(sentinel.tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
          })
        : new Redis(opts.url, { ...common, ...(opts.url.startsWith("rediss:") ? { tls } : {}) });
    this.client.on("ready", () => {
      backoff.reset();
      this.log.info({ event: "ready" }, "redis ready");
      deps.onReadyChange?.(true);
    });
    this.client.on("close", () => deps.onReadyChange?.(false));
    this.reconnectDelay = () => backoff.next();
    this.keepers.push(keepConnected(this.client, this.log, this.reconnectDelay));
    // ioredis reports every failed reconnect here; without a listener it prints to stderr.
    this.client.on("error", (err: Error) => this.log.warn({ event: "error", err: err.message }, "redis error"));
    const wait = opts.waitReplicas;
    if (wait && wait.replicas > 0) {
      const connection = this.client.duplicate();
      connection.on("error", (err: Error) => this.log.warn({ event: "error", err: err.message }, "redis error (durable writes)"));
      this.acks = new ReplicaAcks(connection, wait.replicas, wait.timeoutMs);
      this.keepers.push(keepConnected(connection, this.log, this.reconnectDelay));
    }
  }

  get ready(): boolean {
    return this.client.status === "ready";
  }

  async start(): Promise<void> {
    try {
      await Promise.all([this.client.connect(), this.acks?.connection.connect()]);
    } catch (err) {
      // Not fatal: the gateway starts unready and the client keeps retrying.
      this.log.warn({ event: "connect-failed", err: (err as Error).message }, "redis not reachable at start");
    }
  }

  async stop(): Promise<void> {
    for (const k of this.keepers) k.stop();
    await Promise.all([closeConnection(this.client), this.acks ? closeConnection(this.acks.connection) : undefined]);
  }

  /**
   * A subscriber of its own (a connection with the same settings, in subscriber mode, in which it can do
   * nothing else); its owner starts and stops it.
   */
  subscriber(logger: Logger, onResubscribed?: () => void): RedisSubscriber {
    return new RedisSubscriber(this.client.duplicate(), logger, onResubscribed, this.reconnectDelay);
  }

  /**
   * A Lua script as a function: sent once and then run by its SHA, with failures as GW_STORE_UNAVAILABLE
   * like every other command. Arguments are the `numberOfKeys` keys first, then the script's ARGV.
   * ioredis (Script.ts) sends EVAL as the first call of a script on each new connection and EVALSHA after
   * it; a NOSCRIPT reply is retried once as EVAL, which loads the script. A Sentinel failover is a new
   * connection to a primary whose script cache is empty (scripts are not replicated): one EVAL per script,
   * then EVALSHA again (test/e2e/redis-sentinel.test.ts counts them), with no NOSCRIPT storm. A `durable`
   * script runs as a durable() write (its first key names the slot).
   */
  script<R>(
    name: string,
    numberOfKeys: number,
    lua: string,
    opts: { durable?: boolean } = {},
  ): (...args: Array<string | number>) => Promise<R> {
    const acks = opts.durable ? this.acks : undefined;
    const connection = acks ? acks.connection : this.client;
    connection.defineCommand(name, { numberOfKeys, lua });
    const command = (connection as unknown as Record<string, (...args: Array<string | number>) => Promise<R>>)[name];
    if (!command) throw new Error(`ioredis did not define the script command ${name}`);
    return (...args) => {
      assertOneSlot(name, args.slice(0, numberOfKeys));
      if (!acks) return this.run(() => command.apply(connection, args));
      return this.durable(String(args[0]), (c) => command.apply(c, args));
    };
  }

  /**
   * A Lua script run for many items in one command: each item's keys (`keysPerItem` of them, of one hash
   * slot) one after another in KEYS, and in ARGV the `shared` arguments, then each item's own. Loaded and
   * run as script() does, at most MAX_BATCH_ITEMS items a command, so that no one script holds Redis for
   * long. A script may answer a table of the positions (1-based, in its command) of items it refused;
   * resolves, once every command is answered, with those items' indexes in `items`.
   *
   * On a Cluster each item goes as a command of its own, as script() sends it: a command may only take keys
   * of one hash slot there, and ioredis groups a Cluster's auto-pipelines by the slot of a command's first
   * argument, which for a batch would be its key count, not a key. Those commands still share the writes of
   * their auto-pipelines.
   */
  batchScript(
    name: string,
    keysPerItem: number,
    lua: string,
  ): (items: readonly ScriptItem[], shared: ReadonlyArray<string | number>) => Promise<number[]> {
    const clustered = this.publishCommand === "SPUBLISH";
    // Without numberOfKeys, each call's first argument says how many keys follow (ioredis's dynamic key count).
    this.client.defineCommand(name, clustered ? { numberOfKeys: keysPerItem, lua } : { lua });
    const command = (this.client as unknown as Record<string, (...args: Array<string | number>) => Promise<unknown>>)[name];
    if (!command) throw new Error(`ioredis did not define the script command ${name}`);
    const checked = (item: ScriptItem): ScriptItem => {
      if (item.keys.length !== keysPerItem) throw new Error(`Redis script ${name} takes ${keysPerItem} keys an item`);
      assertOneSlot(name, item.keys);
      return item;
    };
    if (clustered)
      return (items, shared) =>
        Promise.all(
          items.map(checked).map((item) => this.run(() => command.call(this.client, ...item.keys, ...shared, ...item.args))),
        ).then((replies) => replies.flatMap((reply, i) => (refusals(reply, 0).length > 0 ? [i] : [])));
    return (items, shared) => {
      const sent: Array<Promise<number[]>> = [];
      for (let from = 0; from < items.length; from += MAX_BATCH_ITEMS) {
        const keys: string[] = [];
        const args: Array<string | number> = [...shared];
        for (const item of items.slice(from, from + MAX_BATCH_ITEMS).map(checked)) {
          keys.push(...item.keys);
          args.push(...item.args);
        }
        sent.push(this.run(() => command.call(this.client, keys.length, ...keys, ...args)).then((reply) => refusals(reply, from)));
      }
      return sent.length === 1 ? (sent[0] as Promise<number[]>) : Promise.all(sent).then((lists) => lists.flat());
    };
  }

  /**
   * Runs a write (touching `key`) that guards against acting twice, such as the claim of an Idempotency-Key:
   * with REDIS_WAIT_REPLICAS set, on the durable-writes connection and not answered until that many replicas
   * have it (replica-acks.ts; fails as GW_STORE_UNAVAILABLE when they do not in time); otherwise as run().
   */
  async durable<T>(key: string, command: (client: RedisClient) => Promise<T>): Promise<T> {
    const acks = this.acks;
    if (!acks) return this.run(command);
    try {
      return await acks.write(key, command);
    } catch (err) {
      throw err instanceof GatewayError ? err : new GatewayError("GW_STORE_UNAVAILABLE", { cause: err });
    }
  }

  /**
   * Publishes `message` on `channel`: SPUBLISH in Cluster mode, where the subscribers listen with SSUBSCRIBE
   * on the shard owning the channel's slot (Redis 7.0), PUBLISH otherwise. Resolves with the number of
   * subscribers that received it (on that shard, in Cluster mode).
   */
  publish(channel: string, message: string): Promise<number> {
    return this.run(async (c) =>
      Number(this.publishCommand === "SPUBLISH" ? await c.spublish(channel, message) : await c.publish(channel, message)),
    );
  }

  /** Runs one command; any Redis failure becomes the catalogue's GW_STORE_UNAVAILABLE. */
  async run<T>(command: (client: RedisClient) => Promise<T>): Promise<T> {
    try {
      return await command(this.client);
    } catch (err) {
      throw new GatewayError("GW_STORE_UNAVAILABLE", { cause: err });
    }
  }
}

/** At most this many items in one command of a batchScript. */
const MAX_BATCH_ITEMS = 256;

/** The indexes of the items a batch script's reply names as refused (1-based positions in a command of items from `from`). */
function refusals(reply: unknown, from: number): number[] {
  return Array.isArray(reply) ? reply.map((position) => from + Number(position) - 1) : [];
}

/**
 * ioredis' SentinelConnector, with `onError` listening to every connection it opens to a Sentinel, and each
 * such connection named as the data connections are (`connectionName`: CLIENT LIST on a Sentinel shows
 * whose it is). Its failover detector (failoverDetector: true) keeps a subscribed connection to each
 * Sentinel, created inside the connector (SentinelConnector.connectToSentinel) with no error listener: when
 * a Sentinel dies, each failed reconnect was printed to stderr as "[ioredis] Unhandled error event". The
 * `Connector` option is ioredis' documented way to supply the connector; the wrap is of its one factory of
 * Sentinel connections.
 */
function listenedSentinelConnector(onError: (err: Error) => void, connectionName: string | undefined) {
  return class ListenedSentinelConnector extends SentinelConnector {
    constructor(options: unknown) {
      super(options as SentinelConnectionOptions);
      const self = this as unknown as { connectToSentinel: (endpoint: unknown, options?: object) => Redis };
      const connect = self.connectToSentinel.bind(this);
      self.connectToSentinel = (endpoint, options) => {
        const client = connect(endpoint, connectionName !== undefined ? { connectionName, ...options } : options);
        client.on("error", onError);
        return client;
      };
    }
  };
}
