// A throwaway Redis Cluster (per test file): three primaries and a replica of each on free ports in one temp
// dir, all bound to 127.0.0.1, nothing persisted, joined by `redis-cli --cluster create`. killPrimaryOf()
// crashes (SIGKILL) the primary of a key's slot and waitForFailover() waits for its replica to take over.
// stop() ends every process it started. Sharded pub/sub (SSUBSCRIBE/SPUBLISH) needs Redis 7.0.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { freePort, pollUntil } from "./ports.js";
import { redisCommand } from "./redis.js";
import { dataNodeArgs, startRedisNodes } from "./redis-nodes.js";

const PRIMARIES = 3;
/** Short, so a test's failover takes seconds: a primary is failed after this long unreachable (15 s by default). */
const NODE_TIMEOUT_MS = 1000;

export interface ClusterDeployment {
  /** "127.0.0.1:P1,…" of every node (REDIS_CLUSTER_NODES). */
  readonly nodes: string;
  readonly ports: readonly number[];
  readonly dir: string;
  /** The hash slot of a key (CLUSTER KEYSLOT), or the slot itself. */
  slotOf(keyOrSlot: string | number): Promise<number>;
  /** The port of the primary serving a key's slot now. */
  primaryOf(keyOrSlot: string | number): Promise<number>;
  /** SIGKILLs the primary of a key's slot; returns its port. */
  killPrimaryOf(keyOrSlot: string | number): Promise<number>;
  /**
   * Resolves with the port of the new primary of `keyOrSlot` once every live node says cluster_state:ok and
   * names a primary other than `oldPort` for that slot, and that node reports `role:master` (bounded).
   */
  waitForFailover(keyOrSlot: string | number, oldPort: number, timeoutMs?: number): Promise<number>;
  /** Ends every process it started and removes its dir. */
  stop(): Promise<void>;
  /** Recent output of every process, for a failing test's message. */
  output(): string;
}

interface ClusterNode {
  port: number;
  primary: boolean;
  failed: boolean;
  /** Inclusive slot ranges, primaries only. */
  slots: Array<[number, number]>;
}

/**
 * A node's view of the cluster, from CLUSTER NODES ("id ip:port@bus flags master ping pong epoch link slots…"),
 * with each announced port as `probePort` maps it.
 */
async function clusterNodes(port: number, probePort: (announced: number) => number): Promise<ClusterNode[]> {
  const text = await redisCommand(port, ["CLUSTER", "NODES"]);
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [, address = "", flags = "", , , , , , ...slots] = line.split(" ");
      return {
        port: probePort(Number(address.slice(address.lastIndexOf(":") + 1).split("@")[0])),
        primary: flags.split(",").includes("master"),
        failed: /fail/.test(flags),
        slots: slots
          .filter((s) => !s.startsWith("["))
          .map((s) => s.split("-").map(Number))
          .map(([from = 0, to]): [number, number] => [from, to ?? from]),
      };
    });
}

async function clusterState(port: number): Promise<string> {
  const info = await redisCommand(port, ["CLUSTER", "INFO"]);
  return /^cluster_state:(\w+)/m.exec(info)?.[1] ?? "";
}

export interface ClusterOptions {
  /**
   * An ACL user with every right on every node (`user NAME on >PASSWORD ~* &* +@all`), for a client that
   * authenticates (REDIS_USERNAME, REDIS_PASSWORD); the default user stays open for the harness's probes.
   */
  aclUser?: { name: string; password: string };
  /**
   * TLS too: each node also listens with TLS on a port of its own, the cluster bus and replication use TLS
   * (the certificate must also be good for client authentication: nodes connect to each other with it), and
   * the nodes announce their TLS ports, which `nodes` lists. The plain ports stay, for the harness's probes.
   */
  tls?: { certFile: string; keyFile: string; caFile: string };
}

export async function startRedisCluster(opts: ClusterOptions = {}): Promise<ClusterDeployment> {
  const servers = await startRedisNodes("redis-cluster-");
  const { dir } = servers;
  const dead = new Set<number>();
  try {
    const ports: number[] = [];
    const tlsPorts: number[] = [];
    const tls = opts.tls;
    for (let i = 0; i < PRIMARIES * 2; i++) {
      let tlsPort = 0;
      ports.push(
        await servers.start("redis-cluster-node", async (port) => [
          ...dataNodeArgs(dir, port),
          ...["--cluster-enabled", "yes", "--cluster-config-file", `nodes-${port}.conf`],
          ...["--cluster-node-timeout", String(NODE_TIMEOUT_MS)],
          // The bus port is port + 10000 unless set, which for a high free port is past 65535.
          ...["--cluster-port", String(await freePort())],
          ...(opts.aclUser ? ["--user", opts.aclUser.name, "on", `>${opts.aclUser.password}`, "~*", "&*", "+@all"] : []),
          ...(tls
            ? [
                ...["--tls-port", String((tlsPort = await freePort()))],
                ...["--tls-cert-file", tls.certFile, "--tls-key-file", tls.keyFile, "--tls-ca-cert-file", tls.caFile],
                ...["--tls-auth-clients", "no", "--tls-cluster", "yes", "--tls-replication", "yes"],
              ]
            : []),
        ]),
      );
      tlsPorts.push(tlsPort);
    }
    // The first three become primaries, each later one a replica of one of them.
    await promisify(execFile)(
      "redis-cli",
      ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "1", "--cluster-yes"],
      { timeout: 60_000 },
    );
    await pollUntil(
      "every node to say cluster_state:ok and every replica to be in sync",
      async () => {
        const states = await Promise.all(ports.map(clusterState));
        if (states.some((s) => s !== "ok")) return false;
        const roles = await Promise.all(ports.map((p) => redisCommand(p, ["INFO", "replication"])));
        const replicas = roles.filter((r) => r.includes("role:slave"));
        return replicas.length === PRIMARIES && replicas.every((r) => r.includes("master_link_status:up"));
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );

    // Ports below are the plain ones (the harness's probes); with TLS the nodes announce their TLS ports.
    const plainOf = new Map(tlsPorts.map((t, i) => [t, ports[i]!]));
    const probePort = (announced: number): number => plainOf.get(announced) ?? announced;
    const live = (): number[] => ports.filter((p) => !dead.has(p));
    const slotOf = async (keyOrSlot: string | number): Promise<number> =>
      typeof keyOrSlot === "number" ? keyOrSlot : Number(await redisCommand(live()[0]!, ["CLUSTER", "KEYSLOT", keyOrSlot]));
    const ownerIn = (view: ClusterNode[], slot: number): ClusterNode | undefined =>
      view.find((n) => n.primary && !n.failed && n.slots.some(([from, to]) => from <= slot && slot <= to));
    const primaryOf = async (keyOrSlot: string | number): Promise<number> => {
      const slot = await slotOf(keyOrSlot);
      const owner = ownerIn(await clusterNodes(live()[0]!, probePort), slot);
      if (!owner) throw new Error(`no primary serves slot ${slot}`);
      return owner.port;
    };
    return {
      nodes: (tls ? tlsPorts : ports).map((p) => `127.0.0.1:${p}`).join(","),
      ports,
      dir,
      slotOf,
      primaryOf,
      async killPrimaryOf(keyOrSlot) {
        const port = await primaryOf(keyOrSlot);
        dead.add(port);
        await servers.kill(port);
        return port;
      },
      async waitForFailover(keyOrSlot, oldPort, timeoutMs = 60_000) {
        const slot = await slotOf(keyOrSlot);
        return pollUntil(
          `a replica to take over slot ${slot} from 127.0.0.1:${oldPort}, and cluster_state:ok on every live node`,
          async () => {
            const nodes = live();
            const [states, views] = await Promise.all([
              Promise.all(nodes.map(clusterState)),
              Promise.all(nodes.map((p) => clusterNodes(p, probePort))),
            ]);
            if (states.some((s) => s !== "ok")) return undefined;
            const owners = new Set(views.map((view) => ownerIn(view, slot)?.port));
            const [port] = owners;
            if (owners.size !== 1 || port === undefined || port === oldPort) return undefined;
            return (await redisCommand(port, ["INFO", "replication"])).includes("role:master\r\n") ? port : undefined;
          },
          { timeoutMs, intervalMs: 100 },
        );
      },
      stop: servers.stop,
      output: servers.output,
    };
  } catch (err) {
    await servers.stop();
    throw err;
  }
}
