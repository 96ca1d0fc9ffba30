// A gateway as operators run it: its own process (`gateway/main.ts`), its own port, scraped over HTTP.
import type { Env } from "../../lib/env.js";
import { freePort, onFreePorts, pollUntil, PortTaken } from "../../local-stack/ports.js";
import { spawnChild, type ChildHandle } from "../../local-stack/process.js";
import { gatewayEnv, type GatewayTargets } from "./gateway.js";
import { scrapeMetric } from "./metrics.js";

export interface GatewayProcess {
  child: ChildHandle;
  port: number;
  url: string;
  /** One sample from its /metrics, by name and labels, e.g. metric('gateway_replies_forwarded_total', { kind: 'iq' }). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

export interface GatewayProcessOptions {
  /** Node's arguments that start the gateway (e.g. a compiled `dist/gateway/main.js`); default: its sources through tsx. */
  nodeArgs?: readonly string[];
}

/**
 * Waits until the gateway process answers /readyz with 200. An exit first is thrown, as PortTaken when the
 * port was bound by someone else between our probe and the gateway's listen (a free port is only free until then).
 */
export async function waitGatewayReady(child: ChildHandle, url: string): Promise<void> {
  const early = new AbortController();
  void child.exited.then(() => early.abort());
  try {
    await pollUntil(`gateway on ${url} ready`, async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, {
      timeoutMs: 30_000,
      intervalMs: 50,
      signal: early.signal,
    });
  } catch (err) {
    if (!child.hasExited()) throw err;
    const message = `gateway exited:\n${child.output()}`;
    throw /EADDRINUSE/.test(child.output()) ? new PortTaken(message) : new Error(message, { cause: err });
  }
}

/**
 * The port a gateway started with GATEWAY_PORT=0 listens on, read back from its "gateway listening" log line
 * (LOG_LEVEL info or lower). Throws if the process exits first.
 */
export async function listenedPort(child: ChildHandle): Promise<number> {
  const early = new AbortController();
  void child.exited.then(() => early.abort());
  try {
    return await pollUntil(`${child.name}: its "gateway listening" log line`, () => {
      const line = child.output().split("\n").find((l) => l.includes('"event":"started"'));
      const port = line === undefined ? undefined : (JSON.parse(line) as { port?: unknown }).port;
      return typeof port === "number" && port > 0 ? port : undefined;
    }, { timeoutMs: 30_000, intervalMs: 50, signal: early.signal });
  } catch (err) {
    if (child.hasExited()) throw new Error(`${child.name} exited:\n${child.output()}`, { cause: err });
    throw err;
  }
}

export async function startGatewayProcess(targets: GatewayTargets, overrides: Env = {}, port?: number, opts: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const nodeArgs = opts.nodeArgs ?? ["--import", "tsx", "gateway/main.ts"];
  const launch = async (listen: number) => {
    const env = gatewayEnv(targets, { GATEWAY_PORT: String(listen), ...overrides });
    const child = await spawnChild(process.execPath, [...nodeArgs], { name: `gateway-${env.GATEWAY_INSTANCE_ID ?? listen}`, env });
    const url = `http://127.0.0.1:${listen}`;
    try {
      await waitGatewayReady(child, url);
    } catch (err) {
      await child.stop();
      throw err;
    }
    return { child, listen, url };
  };
  // A given port is kept (a restart on the same port); one we picked is picked again if it was taken meanwhile.
  const { child, listen, url } = port !== undefined ? await launch(port) : await onFreePorts(async () => launch(await freePort()));
  return {
    child,
    port: listen,
    url,
    metric: (name, labels = {}) => scrapeMetric(url, name, labels),
    stop: () => child.stop(),
  };
}
