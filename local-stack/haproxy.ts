// A throwaway HAProxy (per test file, demo or bench run) in front of gateway instances on this machine:
// the shipped template rendered into a temp dir, checked with `haproxy -c` before it runs, a free
// frontend port, and server states read over its runtime API socket (node:net, no socat).
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, onFreePorts, pollUntil, PortTaken, waitForPort } from "./ports.js";
import { spawnChild, type ChildHandle } from "./process.js";
import { makeTempDir, removeDir } from "./tempdir.js";
import { fillPlaceholders } from "./template.js";

export interface BackendServer {
  /** HAProxy server name: letters, digits, '_', '.', ':', '-'. */
  name: string;
  /** Port of the instance on 127.0.0.1. */
  port: number;
}

export interface HaproxyServer {
  /** The frontend port (127.0.0.1). */
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly dir: string;
  /** The rendered config. */
  readonly configPath: string;
  /** The runtime API socket. */
  readonly socketPath: string;
  readonly pid: number;
  /**
   * Each server's status as HAProxy sees it: 'UP', 'DOWN', or a transition such as 'UP 1/2'
   * (one failed check of the two that mark it down; also every server's state right after start,
   * before its first check passed), 'DOWN 1/2', 'MAINT', 'no check'.
   */
  serverStates(): Promise<Record<string, string>>;
  /** `show stat` as one record per line (frontend, servers, backend), keyed by the CSV header. */
  showStat(): Promise<Array<Record<string, string>>>;
  /** Any runtime API command (e.g. "disable server gateways/g1"); resolves with its reply. */
  command(line: string): Promise<string>;
  /** Stops it (SIGTERM: immediate stop; SIGKILL after 5 s) and removes its dir. */
  stop(): Promise<void>;
  /** Recent haproxy output (its log lines: errors, retries, server state changes). */
  output(): string;
}

/** The shipped template (deploy/haproxy/haproxy.cfg). */
export const HAPROXY_TEMPLATE = fileURLToPath(new URL("../deploy/haproxy/haproxy.cfg", import.meta.url));

/** The backend the template defines; server names in states and stats are relative to it. */
export const HAPROXY_BACKEND = "gateways";

// Debian puts haproxy in /usr/sbin, which is not on a normal user's PATH.
const HAPROXY = process.env.HAPROXY ?? (existsSync("/usr/sbin/haproxy") ? "/usr/sbin/haproxy" : "haproxy");

/** Fills the template's placeholders (not in comments); throws on one it does not know. */
export function renderHaproxyConfig(
  template: string,
  values: { frontendPort: number; statsSocket: string; servers: readonly BackendServer[] },
): string {
  if (values.servers.length === 0) throw new Error("renderHaproxyConfig: no servers");
  for (const s of values.servers) {
    if (!/^[A-Za-z0-9_.:-]+$/.test(s.name)) throw new Error(`renderHaproxyConfig: bad server name ${JSON.stringify(s.name)}`);
    if (!Number.isInteger(s.port) || s.port <= 0 || s.port > 65_535) throw new Error(`renderHaproxyConfig: bad port for ${s.name}`);
  }
  if (new Set(values.servers.map((s) => s.name)).size !== values.servers.length)
    throw new Error("renderHaproxyConfig: duplicate server names");
  // HAProxy splits config words on blanks; a temp dir path has none, but say so rather than misparse.
  if (/\s/.test(values.statsSocket)) throw new Error(`renderHaproxyConfig: blank in socket path ${values.statsSocket}`);
  // @SERVERS@ stands alone on its line and becomes one `server` line per instance, at its indentation.
  const expanded = template
    .split("\n")
    .flatMap((line) => {
      const servers = /^(\s*)@SERVERS@\s*$/.exec(line);
      return servers ? values.servers.map((s) => `${servers[1]}server ${s.name} 127.0.0.1:${s.port}`) : [line];
    })
    .join("\n");
  return fillPlaceholders(
    expanded,
    { FRONTEND_PORT: String(values.frontendPort), STATS_SOCKET: values.statsSocket },
    { comment: /^\s*#/, what: "renderHaproxyConfig" },
  );
}

/** `haproxy -c -dW -f FILE`: throws with HAProxy's own words if the config is invalid or warns at all. */
export async function checkHaproxyConfig(file: string, timeoutMs = 10_000): Promise<string> {
  const child = spawn(HAPROXY, ["-c", "-dW", "-f", file], {
    stdio: ["ignore", "pipe", "pipe"],
    timeout: timeoutMs,
    killSignal: "SIGKILL",
  });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (t: string) => (out += t));
  child.stderr.setEncoding("utf8").on("data", (t: string) => (out += t));
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (c, s) => resolve({ code: c, signal: s }));
  });
  if (code !== 0) throw new Error(`haproxy -c rejected ${file} (code ${code}, signal ${signal}):\n${out.slice(-4_000)}`);
  return out;
}

/**
 * One runtime API command over the UNIX socket. Without "prompt", HAProxy answers one command and
 * closes the connection, so the reply is everything up to the close.
 */
export function haproxyCommand(socketPath: string, line: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path: socketPath });
    let reply = "";
    const finish = (err?: Error): void => {
      socket.destroy();
      if (err) reject(err);
      else resolve(reply);
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`no reply to "${line}" on ${socketPath} within ${timeoutMs} ms`)));
    socket.once("connect", () => socket.write(`${line}\n`));
    socket.once("error", (err) => finish(err));
    socket.once("end", () => finish());
    socket.setEncoding("utf8").on("data", (text: string) => (reply += text));
  });
}

/** Parses `show stat` CSV ("# pxname,svname,...,status,..." then one line per proxy/server). */
export function parseShowStat(csv: string): Array<Record<string, string>> {
  const lines = csv.split("\n").filter((line) => line.trim() !== "");
  const header = lines.shift();
  if (!header?.startsWith("# ")) throw new Error(`unexpected "show stat" reply: ${JSON.stringify(csv.slice(0, 200))}`);
  const names = header.slice(2).split(",");
  return lines.map((line) => {
    const cells = line.split(",");
    const record: Record<string, string> = {};
    names.forEach((name, i) => {
      if (name !== "") record[name] = cells[i] ?? "";
    });
    return record;
  });
}

async function launch(configPath: string, socketPath: string, port: number, dir: string): Promise<ChildHandle> {
  const handle = await spawnChild(HAPROXY, ["-f", configPath, "-db"], {
    name: `haproxy:${port}`,
    cwd: dir,
    logFile: path.join(dir, "haproxy.log"),
  });
  const early = new AbortController();
  void handle.exited.then((e) => early.abort(new Error(`haproxy exited (code ${e.code}, signal ${e.signal})`)));
  try {
    await waitForPort(port, { timeoutMs: 30_000, signal: early.signal });
    // The open port could be someone else's (taken between freePort() and the bind, before HAProxy
    // failed): the runtime API of the process we started must report its own PID.
    const info = await pollUntil(`haproxy's runtime API on ${socketPath}`, () => haproxyCommand(socketPath, "show info"), {
      timeoutMs: 15_000,
      signal: early.signal,
    });
    if (!new RegExp(`^Pid: ${handle.pid}$`, "m").test(info))
      throw new PortTaken(`port ${port} answered, but not by haproxy pid ${handle.pid}`);
    return handle;
  } catch (err) {
    await handle.stop("SIGKILL").catch(() => {});
    const out = handle.output();
    const message = `haproxy failed to start on port ${port}: ${(err as Error).message}\n--- output ---\n${out.slice(-4_000)}`;
    throw /Address already in use|cannot bind/.test(out) || err instanceof PortTaken ? new PortTaken(message) : new Error(message);
  }
}

export async function startHaproxy(servers: readonly BackendServer[]): Promise<HaproxyServer> {
  const dir = await makeTempDir("haproxy-");
  const configPath = path.join(dir, "haproxy.cfg");
  const socketPath = path.join(dir, "haproxy.sock");
  let port = 0;
  let handle: ChildHandle;
  try {
    const template = await readFile(HAPROXY_TEMPLATE, "utf8");
    // HAProxy's config names the frontend port before start, and it does not report one it picked.
    handle = await onFreePorts(async () => {
      port = await freePort();
      await writeFile(configPath, renderHaproxyConfig(template, { frontendPort: port, statsSocket: socketPath, servers }));
      await checkHaproxyConfig(configPath); // a bad config fails here, with HAProxy's explanation
      return launch(configPath, socketPath, port, dir);
    });
  } catch (err) {
    await removeDir(dir);
    throw err;
  }

  const command = (line: string): Promise<string> => haproxyCommand(socketPath, line);
  const showStat = async (): Promise<Array<Record<string, string>>> => parseShowStat(await command("show stat"));

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dir,
    configPath,
    socketPath,
    pid: handle.pid,
    async serverStates() {
      const states: Record<string, string> = {};
      for (const row of await showStat()) {
        const name = row.svname ?? "";
        if (row.pxname !== HAPROXY_BACKEND || name === "FRONTEND" || name === "BACKEND") continue;
        states[name] = row.status ?? "";
      }
      return states;
    },
    showStat,
    command,
    async stop() {
      await handle.stop();
      await removeDir(dir);
    },
    output: () => handle.output(),
  };
}
