// A throwaway Prosody (per test file, demo or bench run): free ports, temp dir, plain-text auth on
// loopback only (or c2s TLS with a given certificate), one Component block per gateway domain, accounts
// created in bulk through `prosodyctl shell`.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, onFreePorts, pollUntil, PortTaken, waitForPort } from "./ports.js";
import { readFileTail, spawnChild, type ChildHandle } from "./process.js";
import { makeTempDir, removeDir } from "./tempdir.js";
import { fillPlaceholders } from "./template.js";
import { fileSize, readFrom } from "./log-file.js";
import type { ComponentSpec, XmppServer, XmppUser } from "./xmpp-server.js";

export interface ProsodyOptions {
  /** Default: one component, DEFAULT_COMPONENT. With [] the component port stays closed. */
  components?: ComponentSpec[];
  /** Default: 'localhost'. */
  vhost?: string;
  /** c2s TLS, required, for the virtual host. Default: none (plain text on loopback, no STARTTLS offered). */
  tls?: ProsodyTls;
  /**
   * XEP-0198 stream management (Prosody's mod_smacks) for the virtual host. Default: off, as in the shipped
   * configuration. Tests of what the server does with stanzas a vanished session never acknowledged set
   * a short hibernation time.
   */
  streamManagement?: ProsodyStreamManagement;
}

export interface ProsodyStreamManagement {
  /** How long a session that lost its connection waits to be resumed (`smacks_hibernation_time`), seconds. */
  hibernationTimeS: number;
}

/**
 * A certificate for the virtual host: Prosody then offers STARTTLS on the c2s port (RFC 6120 §5) and
 * requires it before authentication, so the server is unusable in plain text. The component port is not
 * affected: XEP-0114 has no TLS.
 */
export interface ProsodyTls {
  /** PEM certificate (leaf first, then any intermediates) naming the virtual host. */
  certFile: string;
  /** Its PEM private key. */
  keyFile: string;
}

export interface ProsodyServer extends XmppServer {
  /** Runs console commands; throws if the shell fails or prints an error line. */
  shell(lines: readonly string[]): Promise<string>;
}

export const DEFAULT_COMPONENT: Readonly<ComponentSpec> = { domain: "gateway.localhost", secret: "test-secret" };

/** A Lua string literal: safe for any JID, password or path in the config and the shell. */
export function luaString(value: string): string {
  const escaped = value.replace(/[\\"]/g, "\\$&").replace(/[\x00-\x1f\x7f]/g, (c) => `\\${c.charCodeAt(0).toString().padStart(3, "0")}`);
  return `"${escaped}"`;
}

interface Layout {
  dir: string;
  configPath: string;
  logPath: string;
  socketPath: string;
  vhost: string;
  components: readonly ComponentSpec[];
  tls: ProsodyTls | undefined;
  streamManagement: ProsodyStreamManagement | undefined;
}

/** The shipped configuration, deploy/prosody/prosody.cfg.lua, with this run's ports, paths and components. */
const TEMPLATE = fileURLToPath(new URL("../deploy/prosody/prosody.cfg.lua", import.meta.url));

async function renderConfig(l: Layout, c2sPort: number, componentPort: number): Promise<string> {
  const q = luaString;
  const components = l.components
    .map((c) =>
      [
        `Component ${q(c.domain)}`,
        `    component_secret = ${q(c.secret)}`,
        `    component_conflict_resolve = ${q(c.conflictResolve ?? "kick_new")}`,
      ].join("\n"),
    )
    .join("\n\n");
  const values: Record<string, string> = {
    DIR: l.dir,
    INTERFACE: "127.0.0.1",
    C2S_PORT: String(c2sPort),
    COMPONENT_PORT: String(componentPort),
    VHOST: l.vhost,
    COMPONENTS: components,
  };
  const filled = fillPlaceholders(await readFile(TEMPLATE, "utf8"), values, { comment: /^\s*--/, what: TEMPLATE });
  return l.tls || l.streamManagement ? `${filled.trimEnd()}\n${hostSection(l.vhost, l.tls, l.streamManagement)}` : filled;
}

/**
 * The virtual host's extra settings for this run, appended after the template's sections: naming the host
 * again reopens its section (these options are all per host in Prosody, and `modules_enabled` adds to the
 * global list), so the shipped template, which other renderings share, stays as it is. One section for all
 * of them: a second `modules_enabled` in the same section would replace the first.
 *
 * TLS: mod_tls offers STARTTLS on c2s; with encryption required, mod_saslauth offers no mechanism before
 * it, so nothing can log in without TLS. Stream management: mod_smacks (XEP-0198), with the hibernation
 * time given; when it runs out, the stanzas the session never acknowledged are bounced to their senders.
 */
function hostSection(vhost: string, tls: ProsodyTls | undefined, sm: ProsodyStreamManagement | undefined): string {
  const q = luaString;
  const modules = [...(tls ? ['"tls"'] : []), ...(sm ? ['"smacks"'] : [])];
  return [
    "",
    `-- For this run (local-stack/prosody.ts, ProsodyOptions): ${[tls ? "c2s TLS (STARTTLS, RFC 6120 §5)" : "", sm ? "stream management (XEP-0198)" : ""].filter(Boolean).join(", ")}.`,
    `VirtualHost ${q(vhost)}`,
    `    modules_enabled = { ${modules.join("; ")} }`,
    ...(tls
      ? [
          `    ssl = { certificate = ${q(tls.certFile)}; key = ${q(tls.keyFile)} }`,
          `    c2s_require_encryption = true`,
          `    allow_unencrypted_plain_auth = false`,
        ]
      : []),
    ...(sm ? [`    smacks_hibernation_time = ${Math.max(1, Math.floor(sm.hibernationTimeS))}`] : []),
    "",
  ].join("\n");
}

/** True once something accepts on the admin socket (a stale file left by a SIGKILL does not). */
function socketAccepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ path: socketPath });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function launch(l: Layout, c2sPort: number, componentPort: number): Promise<ChildHandle> {
  const logStart = await fileSize(l.logPath); // restarts append to the same log
  const handle = await spawnChild("prosody", ["--config", l.configPath, "-F"], {
    name: `prosody:${c2sPort}`,
    cwd: l.dir,
  });
  const early = new AbortController();
  void handle.exited.then((e) => early.abort(new Error(`prosody exited (code ${e.code}, signal ${e.signal})`)));
  try {
    // Open ports alone prove nothing: Prosody keeps running when a bind fails, and the port
    // may then be someone else's. Its log says which services it really activated.
    const c2sLine = `Activated service 'c2s' on [127.0.0.1]:${c2sPort}`;
    // With no Component block, Prosody never opens the component port.
    const needComponent = l.components.length > 0;
    const compLine = `Activated service 'component' on [127.0.0.1]:${componentPort}`;
    await pollUntil(
      `prosody to activate c2s on ${c2sPort} and component on ${componentPort}`,
      async () => {
        const log = existsSync(l.logPath) ? await readFrom(l.logPath, logStart) : "";
        const failed = /Failed to open server port.*/.exec(log);
        if (failed) early.abort(new PortTaken(failed[0])); // fail now, not at the bound
        // A certificate Prosody cannot load leaves it running without STARTTLS: say so here, not as a
        // puzzling refusal in a client later.
        const badCert = l.tls ? /Error creating context for c2s.*/.exec(log) : null;
        if (badCert) early.abort(new Error(badCert[0]));
        const tlsReady = !l.tls || log.includes("Certificates loaded");
        const portsUp = log.includes(c2sLine) && (!needComponent || log.includes(compLine));
        return portsUp && tlsReady && (await socketAccepts(l.socketPath));
      },
      { timeoutMs: 30_000, signal: early.signal },
    );
    await waitForPort(c2sPort);
    if (needComponent) await waitForPort(componentPort);
    return handle;
  } catch (err) {
    await handle.stop("SIGKILL").catch(() => {});
    const message =
      `prosody failed to start (c2s ${c2sPort}, component ${componentPort}): ${(err as Error).message}\n` +
      `--- prosody.log (tail) ---\n${await readFileTail(l.logPath, 4_000)}\n` +
      `--- output ---\n${handle.output().slice(-2_000)}`;
    throw err instanceof PortTaken ? new PortTaken(message) : new Error(message);
  }
}

/** Runs `prosodyctl shell` with the lines on stdin; the server must be running. */
async function runShell(configPath: string, lines: readonly string[], timeoutMs = 30_000): Promise<string> {
  const child = spawn("prosodyctl", ["--config", configPath, "shell"], {
    stdio: ["pipe", "pipe", "pipe"],
    timeout: timeoutMs,
    killSignal: "SIGKILL",
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (t: string) => (out += t));
  child.stderr.setEncoding("utf8").on("data", (t: string) => (out += t));
  child.stdin.on("error", () => {}); // EPIPE if it quits early: the exit code tells why
  child.stdin.end(`${lines.join("\n")}\n`);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (c, s) => resolve({ code: c, signal: s }));
  });
  if (code !== 0) {
    throw new Error(`prosodyctl shell failed (code ${code}, signal ${signal}):\n${out.slice(-4_000)}`);
  }
  // Failures still exit 0 ("! Error: User exists", "! Sorry, I couldn't understand that..."),
  // so error lines are the only signal.
  const errors = out.split("\n").filter((line) => /^(prosody> )?! /.test(line));
  if (errors.length > 0) {
    throw new Error(`prosodyctl shell reported ${errors.length} error(s):\n${errors.slice(0, 20).join("\n")}`);
  }
  return out;
}

export async function startProsody(opts: ProsodyOptions = {}): Promise<ProsodyServer> {
  const dir = await makeTempDir("prosody-");
  const layout: Layout = {
    dir,
    configPath: path.join(dir, "prosody.cfg.lua"),
    logPath: path.join(dir, "prosody.log"),
    socketPath: path.join(dir, "data", "prosody.sock"),
    vhost: opts.vhost ?? "localhost",
    components: opts.components ?? [DEFAULT_COMPONENT],
    tls: opts.tls,
    streamManagement: opts.streamManagement,
  };
  let c2sPort = 0;
  let componentPort = 0;
  let handle: ChildHandle;
  try {
    await mkdir(path.join(dir, "data"));
    await mkdir(path.join(dir, "certs"));
    // Prosody's config names its ports before start, and it does not report ones it picked.
    handle = await onFreePorts(async () => {
      c2sPort = await freePort();
      do componentPort = await freePort();
      while (componentPort === c2sPort);
      await writeFile(layout.configPath, await renderConfig(layout, c2sPort, componentPort));
      return launch(layout, c2sPort, componentPort);
    });
  } catch (err) {
    await removeDir(dir);
    throw err;
  }

  let current: ChildHandle = handle;
  const { vhost, configPath } = layout;
  const shell = (lines: readonly string[]): Promise<string> => runShell(configPath, lines);

  const listUsers = async (): Promise<string[]> => {
    const out = await shell([`user:list(${luaString(vhost)})`]);
    return out
      .split("\n")
      .filter((line) => line.startsWith("| ") && !line.startsWith("| OK:"))
      .map((line) => line.slice(2).trim());
  };

  // Accounts this server already has from us: creating one again is a no-op, so callers need not track them.
  const created = new Set<string>();
  const createUsers = async (requested: readonly XmppUser[]): Promise<void> => {
    for (const u of requested) {
      if (!u.username || /[@/\s]/.test(u.username)) throw new Error(`createUsers: bad username ${JSON.stringify(u.username)}`);
    }
    const users = requested.filter((u) => !created.has(u.username.toLowerCase()));
    if (users.length === 0) return;
    const out = await shell(users.map((u) => `user:create(${luaString(`${u.username}@${vhost}`)}, ${luaString(u.password)})`));
    const confirmed = out.split("\n").filter((line) => line.includes("| OK: User created")).length;
    if (confirmed !== users.length) {
      throw new Error(`createUsers: shell confirmed ${confirmed} of ${users.length} accounts:\n${out.slice(-4_000)}`);
    }
    // Trust but verify: every account must now be listed.
    const listed = new Set(await listUsers());
    const missing = users.map((u) => `${u.username.toLowerCase()}@${vhost}`).filter((jid) => !listed.has(jid));
    if (missing.length > 0) throw new Error(`createUsers: ${missing.length} accounts missing, e.g. ${missing.slice(0, 10).join(", ")}`);
    for (const u of users) created.add(u.username.toLowerCase());
  };

  return {
    c2sPort,
    componentPort,
    dir,
    configPath,
    vhost,
    components: layout.components,
    service: `xmpp://127.0.0.1:${c2sPort}`,
    componentService: `xmpp://127.0.0.1:${componentPort}`,
    get pid() {
      return current.pid;
    },
    createUsers,
    listUsers,
    shell,
    async stop() {
      await current.stop();
      await removeDir(dir);
    },
    async restart() {
      await current.stop();
      current = await launch(layout, c2sPort, componentPort);
    },
    async kill() {
      await current.stop("SIGKILL");
    },
    logTail: (maxBytes = 8_192) => readFileTail(layout.logPath, maxBytes),
  };
}

export type { ComponentSpec, XmppUser } from "./xmpp-server.js";
