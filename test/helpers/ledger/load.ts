// The load of a "nothing lost" run: client loops through the load balancer, each one logical request at a
// time (with its retries, and its replay sent directly to one instance or the other), paced and bounded.
import { setTimeout as pause } from "node:timers/promises";
import type { LedgerClient, Sent, Target } from "./client.js";
import { makeSpec } from "./requests.js";

export interface Done extends Sent {
  replays: Sent[];
}

export interface LoadShape {
  devices: readonly string[];
  /** Client loops, each one request at a time. */
  clients: number;
  /** Pause between one loop's requests. */
  paceMs: number;
  /** The load is bounded in count, whatever happens. */
  maxRequests: number;
}

export class Load {
  readonly done: Done[] = [];
  private seq = 0;
  private stopping = false;
  private readonly loops: Array<Promise<void>> = [];

  constructor(
    private readonly client: LedgerClient,
    private readonly shape: LoadShape,
    private readonly lb: Target,
    private readonly direct: readonly [Target, Target],
  ) {}

  start(): void {
    for (let i = 0; i < this.shape.clients; i++) this.loops.push(this.loop());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  /** Requests started at or after `since` that got their own device's reply (or were accepted). */
  servedSince(since: number): number {
    return this.done.filter((d) => d.startedAt >= since && (d.final.kind === "device" || d.final.kind === "accepted")).length;
  }

  private async loop(): Promise<void> {
    while (!this.stopping && this.seq < this.shape.maxRequests) {
      const spec = makeSpec(this.seq++, this.shape.devices);
      const sent = await this.client.send(spec, [this.lb], "");
      const replays: Sent[] = [];
      if (spec.replay) {
        const [a, b] = this.direct;
        replays.push(await this.client.send(spec, spec.seq % 2 === 0 ? [a, b] : [b, a], "r"));
      }
      this.done.push({ ...sent, replays });
      await pause(this.shape.paceMs);
    }
  }
}
