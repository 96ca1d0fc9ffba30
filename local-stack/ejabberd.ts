// A throwaway ejabberd 23.01 (per test file, demo or bench run): free ports, temp dir, plain-text auth
// on loopback only, one component domain that several connections may share, accounts created in bulk
// through one XEP-0227 (PIEFXIS) import. Same shape as ProsodyServer where they overlap, so a test can
// run against either server. No systemd, no epmd: the Erlang node listens for ejabberdctl on a free
// loopback port of its own (ERL_DIST_PORT) and is reachable only with its random cookie. Nodes of a cluster
// (ejabberd-cluster.ts) are started here too, with a shared cookie and a private epmd instead.
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { xml } from "@xmpp/client";
import { freePort, onFreePorts, pollUntil, PortTaken } from "./ports.js";
import { isAlive, readFileTail, spawnChild, type ChildHandle } from "./process.js";
import { DEFAULT_COMPONENT } from "./prosody.js";
import { makeTempDir, removeDir } from "./tempdir.js";
import { fillPlaceholders } from "./template.js";
import { fileSize, readFrom } from "./log-file.js";
import type { ComponentSpec, XmppServer, XmppUser } from "./xmpp-server.js";

export interface EjabberdOptions {
  /** Default: DEFAULT_COMPONENT.domain ('gateway.localhost'), as for the Prosody helper. */
  componentDomain?: string;
  /** Default: DEFAULT_COMPONENT.secret, as for the Prosody helper. */
  componentSecret?: string;
  /** Erlang node name; default a random `ejb_<hex>@localhost`. Cluster members need distinct ones. */
  node?: string;
  /** Erlang cookie; default a random one. Cluster members share one (ejabberd-cluster.ts). */
  cookie?: string;
  /**
   * The port of a private epmd (ejabberd-cluster.ts) the node registers with and finds its peers through.
   * Absent: no epmd at all (ERL_DIST_PORT), which only lets ejabberdctl reach this one node.
   */
  epmdPort?: number;
  /**
   * Accounts known to exist (lower-cased localparts), shared by the members of one cluster: Mnesia
   * replicates them, and a PIEFXIS import aborts at the first one that exists.
   */
  knownAccounts?: Set<string>;
}

export interface EjabberdServer extends XmppServer {
  /** The Erlang node name (e.g. ejb_1a2b3c4d@localhost); it appears in the beam's command line. */
  readonly node: string;
  /** Runs one ejabberdctl command against this node; throws with its output on a non-zero exit. */
  ctl(args: readonly string[], timeoutMs?: number): Promise<string>;
}

/** The shipped template (deploy/ejabberd/ejabberd.yml). */
export const EJABBERD_TEMPLATE = fileURLToPath(new URL("../deploy/ejabberd/ejabberd.yml", import.meta.url));

// Debian puts ejabberdctl in /usr/sbin, which is not on a normal user's PATH.
const EJABBERDCTL = process.env.EJABBERDCTL ?? (existsSync("/usr/sbin/ejabberdctl") ? "/usr/sbin/ejabberdctl" : "ejabberdctl");

const VHOST = "localhost";

/** Text for inside a double-quoted YAML string (a JSON string body is a valid one). */
function yamlQuoted(value: string): string {
  return JSON.stringify(value).slice(1, -1);
}

/** Fills the template's placeholders; throws on a placeholder it does not know. */
export function renderEjabberdConfig(
  template: string,
  values: { c2sPort: number; componentPort: number; componentDomain: string; componentSecret: string },
): string {
  const replacements: Record<string, string> = {
    C2S_PORT: String(values.c2sPort),
    COMPONENT_PORT: String(values.componentPort),
    COMPONENT_DOMAIN: yamlQuoted(values.componentDomain),
    COMPONENT_SECRET: yamlQuoted(values.componentSecret),
  };
  return fillPlaceholders(template, replacements, { comment: /^\s*#/, what: "renderEjabberdConfig" });
}

interface Layout {
  dir: string;
  etcDir: string;
  spoolDir: string;
  logDir: string;
  configPath: string;
  ctlConfigPath: string;
  pidPath: string;
  logPath: string;
  node: string;
  cookie: string;
  epmdPort: number | undefined;
  component: ComponentSpec;
}

/**
 * DIR/etc/ejabberdctl.cfg, sourced by /usr/sbin/ejabberdctl (bash) for the server and for every ctl
 * command. Rewritten at each launch because the distribution port is chosen afresh each time; the node
 * name stays, since Mnesia (the accounts) is bound to it.
 */
function renderCtlConfig(l: Layout, distPort: number | undefined): string {
  const distribution =
    distPort !== undefined
      ? ["# epmd-less distribution: the node listens on this port itself and ctl commands go straight to it.", `ERL_DIST_PORT=${distPort}`]
      : [
          "# A private epmd on loopback (ejabberd-cluster.ts): the cluster's nodes find each other through it.",
          `export ERL_EPMD_PORT=${l.epmdPort}`,
          "ERL_EPMD_ADDRESS=127.0.0.1",
        ];
  // With a private epmd, never let erl start (and leave behind) a daemon of its own.
  const noEpmd = distPort === undefined ? " -start_epmd false" : "";
  return [
    "# Written by local-stack/ejabberd.ts for one throwaway run.",
    '# Run as the current user (root here) instead of su-ing to the "ejabberd" system user.',
    "EXEC_CMD=as_current_user",
    `ERLANG_NODE=${l.node}`,
    ...distribution,
    "# A random cookie and loopback only: nobody else can drive this node.",
    `ERL_OPTIONS="-setcookie ${l.cookie} -kernel inet_dist_use_interface {127,0,0,1}${noEpmd}"`,
    `EJABBERD_PID_PATH=${l.pidPath}`,
    `CONTRIB_MODULES_PATH=${path.join(l.dir, "ext-modules")}`,
    `CONTRIB_MODULES_CONF_DIR=${path.join(l.dir, "ext-modules", "conf")}`,
    "EJABBERD_BYPASS_WARNINGS=true",
    "",
  ].join("\n");
}

function ctlArgs(l: Layout, args: readonly string[]): string[] {
  return ["--config-dir", l.etcDir, "--spool", l.spoolDir, "--logs", l.logDir, ...args];
}

async function readPid(pidPath: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(pidPath, "utf8")).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Sends a stream header and resolves with what came back once `expect` matches: proof that an XMPP
 * server (not just any listener) answers on the port.
 */
function streamReply(port: number, header: string, expect: RegExp, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1" });
    let received = "";
    const finish = (err?: Error): void => {
      socket.destroy();
      if (err) reject(err);
      else resolve(received);
    };
    socket.setTimeout(timeoutMs, () =>
      finish(new Error(`no stream reply on ${port} within ${timeoutMs} ms (got ${JSON.stringify(received)})`)),
    );
    socket.once("connect", () => socket.write(header));
    socket.once("error", (err) => finish(err));
    socket.once("close", () => finish(new Error(`port ${port} closed the stream (got ${JSON.stringify(received)})`)));
    socket.setEncoding("utf8").on("data", (text: string) => {
      received += text;
      if (expect.test(received)) finish();
    });
  });
}

/** Both listeners really speak XMPP (the c2s one as this vhost): after a start, or a restart by join_cluster. */
export async function speaksXmpp(c2sPort: number, componentPort: number, componentDomain: string): Promise<void> {
  await streamReply(
    c2sPort,
    `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${VHOST}' version='1.0'>`,
    /<stream:features/,
  );
  await streamReply(
    componentPort,
    `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${componentDomain}'>`,
    /<stream:stream[^>]*\sid=/,
  );
}

// beam.smp is a grandchild (node → bash ejabberdctl → beam.smp), so process.ts's exit hook, which
// kills its own children, would only take the wrapper and orphan the server. Every live beam is killed
// here too. Only an 'exit' hook: process.ts turns SIGTERM/SIGINT/SIGHUP into process.exit() as long
// as it is the sole listener, and that runs this hook (an extra signal listener would stop that).
const liveBeams = new Set<number>();
process.on("exit", () => {
  for (const pid of liveBeams) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
});

/** The (first) live child process of `pid`, if any. */
function childOf(pid: number): number | undefined {
  const ps = spawnSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" });
  const first = Number(ps.stdout?.trim().split("\n")[0]);
  return Number.isInteger(first) && first > 0 && isAlive(first) ? first : undefined;
}

interface Running {
  wrapper: ChildHandle;
  beamPid: number;
}

async function launch(l: Layout, c2sPort: number, componentPort: number): Promise<Running> {
  // The Erlang distribution port goes into ejabberdctl's config before start; a launch that finds it taken is
  // retried by onFreePorts. With a private epmd the node picks its own and registers it there.
  const distPort = l.epmdPort === undefined ? await freePort() : undefined;
  await writeFile(l.ctlConfigPath, renderCtlConfig(l, distPort));
  // A SIGKILLed or failed start leaves its pid file: never read the previous run's PID.
  await rm(l.pidPath, { force: true });
  const logStart = await fileSize(l.logPath); // restarts append to the same log
  const wrapper = await spawnChild(EJABBERDCTL, ctlArgs(l, ["foreground"]), {
    name: `ejabberd:${c2sPort}`,
    cwd: l.dir,
  });
  const early = new AbortController();
  void wrapper.exited.then((e) => early.abort(new Error(`ejabberd exited (code ${e.code}, signal ${e.signal})`)));
  let beamPid: number | undefined;
  try {
    // Open ports alone prove nothing: they may be someone else's. ejabberd logs each listener it
    // really bound, and halts (the wrapper exits) when a bind fails with eaddrinuse.
    const c2sLine = `Start accepting TCP connections at 127.0.0.1:${c2sPort} for ejabberd_c2s`;
    const compLine = `Start accepting TCP connections at 127.0.0.1:${componentPort} for ejabberd_service`;
    const startedLine = `is started in the node ${l.node}`;
    await pollUntil(
      `ejabberd to start c2s on ${c2sPort} and component on ${componentPort}`,
      async () => {
        beamPid ??= await readPid(l.pidPath);
        if (beamPid !== undefined) liveBeams.add(beamPid);
        const log = existsSync(l.logPath) ? await readFrom(l.logPath, logStart) : "";
        return beamPid !== undefined && log.includes(startedLine) && log.includes(c2sLine) && log.includes(compLine);
      },
      { timeoutMs: 60_000, intervalMs: 50, signal: early.signal },
    );
    await speaksXmpp(c2sPort, componentPort, l.component.domain);
    return { wrapper, beamPid: beamPid as number };
  } catch (err) {
    // No pid file yet (e.g. a start that hangs): the wrapper's own child is the beam.
    beamPid ??= (await readPid(l.pidPath)) ?? childOf(wrapper.pid);
    await halt({ wrapper, beamPid: beamPid ?? 0 }, "SIGKILL").catch(() => {});
    const out = wrapper.output();
    const message =
      `ejabberd failed to start (c2s ${c2sPort}, component ${componentPort}, dist ${distPort ?? `via epmd ${l.epmdPort}`}): ${(err as Error).message}\n` +
      `--- ejabberd.log (tail) ---\n${await readFileTail(l.logPath, 4_000)}\n` +
      `--- output ---\n${out.slice(-3_000)}`;
    // eaddrinuse: a listener ("failed_to_start_child ... eaddrinuse") or the distribution port
    // ("Protocol 'inet_tcp': register/listen error: eaddrinuse").
    throw out.includes("eaddrinuse") || err instanceof PortTaken ? new PortTaken(message) : new Error(message);
  }
}

/**
 * Stops the beam (SIGTERM: a clean Mnesia shutdown, ~1 s) and makes sure the wrapper is gone too.
 * The wrapper is bash waiting for the beam, so it exits with it.
 */
async function halt(r: Running, signal: NodeJS.Signals = "SIGTERM", timeoutMs = 10_000): Promise<void> {
  if (r.beamPid > 0 && isAlive(r.beamPid)) {
    try {
      process.kill(r.beamPid, signal);
    } catch {
      // gone meanwhile
    }
    try {
      await pollUntil(`ejabberd beam ${r.beamPid} to exit`, () => !isAlive(r.beamPid), { timeoutMs, intervalMs: 20 });
    } catch {
      try {
        process.kill(r.beamPid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
      await pollUntil(`ejabberd beam ${r.beamPid} to exit after SIGKILL`, () => !isAlive(r.beamPid), { timeoutMs: 5_000, intervalMs: 20 });
    }
  }
  liveBeams.delete(r.beamPid);
  // Let the wrapper reap the beam and exit by itself: killed first, it would orphan the dead beam as
  // a zombie that init here is slow to reap. SIGKILL only if it lingers (e.g. the beam never started).
  await pollUntil("the ejabberdctl wrapper to exit", () => r.wrapper.hasExited(), { timeoutMs: 5_000, intervalMs: 10 }).catch(() => {});
  await r.wrapper.stop("SIGKILL", 5_000);
}

/**
 * Runs one ejabberdctl command (each starts a short-lived hidden Erlang node: ~0.2–0.3 s). That node is
 * a child of the bash script, so the command runs in a process group of its own and a timeout kills
 * the whole group, not just the script.
 */
async function runCtl(l: Layout, args: readonly string[], timeoutMs = 30_000): Promise<string> {
  const child = spawn(EJABBERDCTL, ctlArgs(l, args), { cwd: l.dir, stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (t: string) => (out += t));
  child.stderr.setEncoding("utf8").on("data", (t: string) => (out += t));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }, timeoutMs);
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once("error", reject);
      child.once("close", (c, s) => resolve({ code: c, signal: s }));
    });
    if (code !== 0) {
      const why = timedOut ? `timed out after ${timeoutMs} ms` : `code ${code}, signal ${signal}`;
      throw new Error(`ejabberdctl ${args.join(" ")} failed (${why}):\n${out.slice(-4_000)}`);
    }
    return out;
  } finally {
    clearTimeout(timer);
  }
}

export async function startEjabberd(opts: EjabberdOptions = {}): Promise<EjabberdServer> {
  const component: ComponentSpec = {
    domain: opts.componentDomain ?? DEFAULT_COMPONENT.domain,
    secret: opts.componentSecret ?? DEFAULT_COMPONENT.secret,
  };
  const dir = await makeTempDir("ejabberd-");
  const etcDir = path.join(dir, "etc");
  const layout: Layout = {
    dir,
    etcDir,
    spoolDir: path.join(dir, "spool"),
    logDir: path.join(dir, "log"),
    configPath: path.join(etcDir, "ejabberd.yml"),
    ctlConfigPath: path.join(etcDir, "ejabberdctl.cfg"),
    pidPath: path.join(dir, "ejabberd.pid"),
    logPath: path.join(dir, "log", "ejabberd.log"),
    node: opts.node ?? `ejb_${randomBytes(4).toString("hex")}@localhost`,
    cookie: opts.cookie ?? randomBytes(16).toString("hex"),
    epmdPort: opts.epmdPort,
    component,
  };
  let c2sPort = 0;
  let componentPort = 0;
  let running: Running;
  try {
    for (const sub of [etcDir, layout.spoolDir, layout.logDir, path.join(dir, "ext-modules", "conf")]) {
      await mkdir(sub, { recursive: true });
    }
    // ERL_INETRC points at DIR/etc/inetrc: without it name lookups of "localhost" go to DNS.
    await copyFile("/etc/ejabberd/inetrc", path.join(etcDir, "inetrc"));
    const template = await readFile(EJABBERD_TEMPLATE, "utf8");
    // ejabberd's config names its ports before start, and it does not report ones it picked.
    running = await onFreePorts(async () => {
      c2sPort = await freePort();
      do componentPort = await freePort();
      while (componentPort === c2sPort);
      const values = { c2sPort, componentPort, componentDomain: component.domain, componentSecret: component.secret };
      await writeFile(layout.configPath, renderEjabberdConfig(template, values));
      return launch(layout, c2sPort, componentPort);
    });
  } catch (err) {
    await removeDir(dir);
    throw err;
  }

  let current: Running | undefined = running;
  let lastPid = running.beamPid; // kept after stop/kill, like ProsodyServer.pid
  // The PIEFXIS import aborts at the first account that already exists, so only new names go in.
  const created = opts.knownAccounts ?? new Set<string>();
  let importSeq = 0;
  const ctl = (args: readonly string[], timeoutMs?: number): Promise<string> => runCtl(layout, args, timeoutMs);

  const listUsers = async (): Promise<string[]> => {
    const out = await ctl(["registered_users", VHOST]);
    return out
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "")
      .map((user) => `${user}@${VHOST}`);
  };

  const createUsers = async (users: readonly XmppUser[]): Promise<void> => {
    const fresh = new Map<string, XmppUser>();
    for (const u of users) {
      if (!u.username || /[@/\s]/.test(u.username)) throw new Error(`createUsers: bad username ${JSON.stringify(u.username)}`);
      const name = u.username.toLowerCase();
      if (!created.has(name)) fresh.set(name, u);
    }
    if (fresh.size === 0) return;
    const doc = xml(
      "server-data",
      { xmlns: "urn:xmpp:pie:0" },
      xml("host", { jid: VHOST }, ...[...fresh].map(([name, u]) => xml("user", { name, password: u.password }))),
    );
    const file = path.join(dir, `import-${++importSeq}.xml`);
    await writeFile(file, `<?xml version='1.0' encoding='UTF-8'?>\n${doc.toString()}\n`);
    try {
      await ctl(["import_piefxis", file]);
    } catch (err) {
      // The import stops at the first account that exists (one created some other way): remember the
      // ones that made it in, so that a later call does not trip over them.
      const listed = await listUsers().catch(() => [] as string[]);
      for (const jid of listed) created.add(jid.slice(0, jid.lastIndexOf("@")));
      throw new Error(`${(err as Error).message}\n--- ejabberd.log (tail) ---\n${await readFileTail(layout.logPath, 2_000)}`, {
        cause: err,
      });
    } finally {
      await rm(file, { force: true });
    }
    // Trust but verify: every account must now be listed.
    const listed = new Set(await listUsers());
    const missing = [...fresh.keys()].filter((name) => !listed.has(`${name}@${VHOST}`));
    for (const name of fresh.keys()) if (!missing.includes(name)) created.add(name);
    if (missing.length > 0) throw new Error(`createUsers: ${missing.length} accounts missing, e.g. ${missing.slice(0, 10).join(", ")}`);
  };

  const halted = async (signal?: NodeJS.Signals): Promise<void> => {
    if (!current) return;
    await halt(current, signal);
    current = undefined;
  };

  return {
    c2sPort,
    componentPort,
    dir,
    configPath: layout.configPath,
    vhost: VHOST,
    components: [component],
    service: `xmpp://127.0.0.1:${c2sPort}`,
    componentService: `xmpp://127.0.0.1:${componentPort}`,
    node: layout.node,
    get pid() {
      return lastPid;
    },
    createUsers,
    listUsers,
    ctl,
    async stop() {
      await halted();
      await removeDir(dir);
    },
    async restart() {
      await halted();
      // Same c2s/component ports; only the distribution port may change if someone took it.
      current = await onFreePorts(() => launch(layout, c2sPort, componentPort));
      lastPid = current.beamPid;
    },
    async kill() {
      await halted("SIGKILL");
    },
    logTail: (maxBytes = 8_192) => readFileTail(layout.logPath, maxBytes),
  };
}
