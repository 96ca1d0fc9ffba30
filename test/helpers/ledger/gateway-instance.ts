// A gateway process of a "nothing lost" run: started again on the same port after each kill, with a client
// agent of its own, and its /readyz read by the test.
import http from "node:http";
import type { Env } from "../../../lib/env.js";
import { GatewayIncarnations } from "../gateway-process.js";
import type { Target } from "./client.js";

/** A gateway instance whose start waits for its port only (a hot standby is never ready). */
export class GatewayInstance extends GatewayIncarnations {
  readonly agent = new http.Agent({ keepAlive: true });

  constructor(name: string, env: (incarnation: string) => Env, logDir: string) {
    super(name, env, logDir, { waitFor: "listening" });
  }

  get target(): Target {
    return { name: this.name, port: this.port, agent: this.agent };
  }

  /** /readyz: its status and checks, or undefined when nothing answers. */
  async readiness(): Promise<{ status: number; checks: Record<string, boolean> } | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.port}/readyz`, { signal: AbortSignal.timeout(2_000) });
      return { status: res.status, checks: ((await res.json()) as { checks: Record<string, boolean> }).checks };
    } catch {
      return undefined;
    }
  }

  override async stop(): Promise<void> {
    this.agent.destroy();
    await super.stop(8_000);
  }
}
