// Throwaway ejabberd nodes in one Mnesia cluster (tests, demo): each node is ejabberd.ts's launcher with its
// own node name, spool dir, c2s and component ports, and all share one random cookie, one component domain
// and secret, and one private epmd on a free loopback port. The epmd-less mode of a single node
// (ERL_DIST_PORT) cannot serve here: `-erl_epmd_port` makes a node look for every peer on its own port,
// and two nodes on one host cannot both listen there. The second and later nodes `join_cluster` the first
// (ejabberd docs, "Clustering"): they restart their ejabberd application with Mnesia copied from it, so
// accounts, rosters and routes are shared.
import { randomBytes } from "node:crypto";
import { freePort, onFreePorts, pollUntil, PortTaken, waitForPort } from "./ports.js";
import { spawnChild, type ChildHandle } from "./process.js";
import { speaksXmpp, startEjabberd, type EjabberdOptions, type EjabberdServer } from "./ejabberd.js";
import type { XmppUser } from "./xmpp-server.js";

const EPMD = process.env.EPMD ?? "epmd";

export interface EjabberdCluster {
  /** In start order; nodes[0] is the one the others joined. */
  readonly nodes: readonly EjabberdServer[];
  /** The private epmd's port. */
  readonly epmdPort: number;
  /** Creates accounts once, through the first live node: Mnesia replicates them to the others. */
  createUsers(users: readonly XmppUser[]): Promise<void>;
  /** The node names `ejabberdctl list_cluster` reports, asked of `via` (default: the first live node). */
  listCluster(via?: EjabberdServer): Promise<string[]>;
  /** SIGKILLs the beam of one node, like a crash; the others go on. */
  kill(node: EjabberdServer): Promise<void>;
  /** Stops every node, removes their dirs, stops epmd. */
  stop(): Promise<void>;
}

export interface EjabberdClusterOptions extends Pick<EjabberdOptions, "componentDomain" | "componentSecret"> {
  /** How many nodes (default 2). */
  nodes?: number;
}

/** A foreground epmd on a free loopback port: a child of ours, so it ends with us. */
async function startEpmd(): Promise<{ port: number; child: ChildHandle }> {
  return onFreePorts(async () => {
    const port = await freePort();
    const child = await spawnChild(EPMD, ["-port", String(port), "-address", "127.0.0.1"], { name: `epmd:${port}` });
    const early = new AbortController();
    void child.exited.then((e) => early.abort(new PortTaken(`epmd on ${port} exited (code ${e.code}): ${child.output()}`)));
    try {
      await waitForPort(port, { timeoutMs: 10_000 });
      early.signal.throwIfAborted();
      return { port, child };
    } catch (err) {
      await child.stop("SIGKILL");
      throw err;
    }
  });
}

export async function startEjabberdCluster(opts: EjabberdClusterOptions = {}): Promise<EjabberdCluster> {
  const count = opts.nodes ?? 2;
  if (!Number.isInteger(count) || count < 1) throw new Error(`startEjabberdCluster: nodes must be a positive integer, not ${count}`);
  const epmd = await startEpmd();
  const tag = randomBytes(3).toString("hex");
  const shared: EjabberdOptions = {
    ...opts,
    cookie: randomBytes(16).toString("hex"),
    epmdPort: epmd.port,
    knownAccounts: new Set<string>(),
  };
  const nodes: EjabberdServer[] = [];
  const killed = new Set<EjabberdServer>();
  const stop = async (): Promise<void> => {
    // Later nodes first, so none of them outlives the one it joined by much; each stop is its own.
    await Promise.allSettled([...nodes].reverse().map((n) => n.stop()));
    await epmd.child.stop("SIGTERM");
  };
  try {
    // One at a time: two first starts at once would each create a Mnesia schema of their own anyway, and
    // the machine's cores are better spent on one boot.
    for (let i = 0; i < count; i++) {
      const node = await startEjabberd({ ...shared, node: `ejb_${tag}_${i + 1}@localhost` });
      nodes.push(node);
      if (i === 0) continue;
      await node.ctl(["join_cluster", nodes[0]!.node], 60_000);
      // join_cluster restarts ejabberd on the joining node: its listeners come back after it returns.
      await pollUntil(
        `${node.node} to serve again after join_cluster`,
        async () => {
          await speaksXmpp(node.c2sPort, node.componentPort, node.components[0]!.domain);
          return true;
        },
        { timeoutMs: 30_000, intervalMs: 100 },
      );
    }
    const live = (): EjabberdServer => {
      const first = nodes.find((n) => !killed.has(n));
      if (!first) throw new Error("every node of the cluster was killed");
      return first;
    };
    const listCluster = async (via?: EjabberdServer): Promise<string[]> => {
      const out = await (via ?? live()).ctl(["list_cluster"]);
      return out
        .split("\n")
        .map((line) => line.trim().replace(/^'(.*)'$/, "$1"))
        .filter((line) => line !== "");
    };
    const members = await listCluster(nodes[nodes.length - 1]);
    const missing = nodes.filter((n) => !members.includes(n.node));
    if (missing.length > 0) throw new Error(`list_cluster shows ${members.join(", ")}: ${missing.map((n) => n.node).join(", ")} missing`);
    return {
      nodes,
      epmdPort: epmd.port,
      createUsers: (users) => live().createUsers(users),
      listCluster,
      async kill(node) {
        if (!nodes.includes(node)) throw new Error(`${node.node} is not a node of this cluster`);
        killed.add(node);
        await node.kill();
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}
