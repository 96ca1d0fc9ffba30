// A gateway as operators run it: its own process (`gateway/main.ts`), its own port, scraped over HTTP.
import type { Env } from "../../adapters/shared/env.js";
import { freePort, pollUntil } from "../../deploy/local/ports.js";
import { spawnChild, type ChildHandle } from "../../deploy/local/process.js";
import { gatewayEnv, type GatewayTargets } from "./gateway.js";

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

export async function startGatewayProcess(targets: GatewayTargets, overrides: Env = {}, port?: number, opts: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const listen = port ?? (await freePort());
  const env = gatewayEnv(targets, { GATEWAY_PORT: String(listen), ...overrides });
  const nodeArgs = opts.nodeArgs ?? ["--import", "tsx", "gateway/main.ts"];
  const child = await spawnChild(process.execPath, [...nodeArgs], { name: `gateway-${env.GATEWAY_INSTANCE_ID ?? listen}`, env });
  const url = `http://127.0.0.1:${listen}`;
  await pollUntil(`gateway on ${listen} ready`, async () => {
    if (child.hasExited()) throw new Error(`gateway exited:\n${child.output()}`);
    return (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200;
  }, { timeoutMs: 20_000, intervalMs: 50 });
  return {
    child,
    port: listen,
    url,
    async metric(name, labels = {}) {
      const text = await (await fetch(`${url}/metrics`)).text();
      const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
      let sum = 0;
      for (const line of text.split("\n")) {
        if (!line.startsWith(name) || (line[name.length] !== " " && line[name.length] !== "{")) continue;
        if (wanted.every((w) => line.includes(w))) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
      }
      return sum;
    },
    stop: () => child.stop(),
  };
}
