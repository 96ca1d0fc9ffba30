import type { Redis } from "ioredis";
import { GatewayError } from "../errors.js";
import type { RedisClient } from "./client.js";
import { keySlot } from "./slots.js";

/**
 * Writes that must survive a failover before the gateway acts on them (REDIS_WAIT_REPLICAS; README, "Redis
 * Sentinel": what weakens). Redis replicates asynchronously, so a primary that fails just after acknowledging a write may take
 * it along; `WAIT numreplicas timeout` (https://redis.io/docs/latest/commands/wait/) blocks the connection that
 * sent it until that many replicas have every write it sent before. The write and its WAIT therefore go on a
 * connection of their own (WAIT would stall every other command queued behind it), and writes that complete
 * while a WAIT is out share the next one (group commit): one WAIT per replication round trip, not per write.
 * In a Redis Cluster, WAIT goes to the node that holds the key's slot, one group per node.
 *
 * A write that does not reach enough replicas in time fails as GW_STORE_UNAVAILABLE (the request is not sent:
 * the device was not reached); the write itself stays on the primary, where it is as valid as any other.
 */
export class ReplicaAcks {
  private readonly groups = new Map<Redis, WaitGroup>();

  constructor(
    /** The connection the durable writes use: a duplicate of the gateway's own (or of its Cluster). */
    readonly connection: RedisClient,
    private readonly replicas: number,
    private readonly timeoutMs: number,
  ) {}

  /** Runs `write` (which touches `key`) on the durable connection; resolves once `replicas` replicas have it. */
  async write<T>(key: string, write: (c: RedisClient) => Promise<T>): Promise<T> {
    const result = await write(this.connection);
    await this.groupFor(key).confirm();
    return result;
  }

  private groupFor(key: string): WaitGroup {
    const node = this.nodeFor(key);
    let group = this.groups.get(node);
    if (!group) {
      group = new WaitGroup(node, this.replicas, this.timeoutMs);
      this.groups.set(node, group);
    }
    return group;
  }

  /** The connection the write went on: the connection itself, or, in a Cluster, the primary of the key's slot. */
  private nodeFor(key: string): Redis {
    const c = this.connection;
    if (!("slots" in c)) return c;
    const nodeKey = c.slots[keySlot(key)]?.[0];
    const node = c.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === nodeKey);
    if (!node) throw new GatewayError("GW_STORE_UNAVAILABLE", { message: `no primary known for the slot of ${key}` });
    return node;
  }
}

/** Writers waiting for one WAIT on one node connection: at most one WAIT out at a time, the next shared. */
class WaitGroup {
  private waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private sending = false;

  constructor(
    private readonly node: Redis,
    private readonly replicas: number,
    private readonly timeoutMs: number,
  ) {}

  /** Resolves once a WAIT sent after the caller's write (which has completed) reports enough replicas. */
  confirm(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    if (this.sending || this.waiting.length === 0) return;
    const batch = this.waiting;
    this.waiting = [];
    this.sending = true;
    this.node.call("WAIT", this.replicas, this.timeoutMs).then(
      (acked) => {
        if (Number(acked) >= this.replicas) for (const w of batch) w.resolve();
        else {
          const err = new GatewayError("GW_STORE_UNAVAILABLE", {
            message: `the write reached ${String(acked)} of the ${this.replicas} replicas required within ${this.timeoutMs} ms`,
          });
          for (const w of batch) w.reject(err);
        }
        this.next();
      },
      (cause: unknown) => {
        const err = new GatewayError("GW_STORE_UNAVAILABLE", { cause });
        for (const w of batch) w.reject(err);
        this.next();
      },
    );
  }

  private next(): void {
    this.sending = false;
    this.pump();
  }
}
