// The gateway-level cost of REDIS_WAIT_REPLICAS: keyed POSTs (each with an Idempotency-Key of its own, so each
// claims a key) through an in-process gateway to simulated devices over Prosody, against a Redis primary with
// one replica, with REDIS_WAIT_REPLICAS=0 and =1 in turn (alternating, a fresh gateway each, the same servers).
// The load runs in this process too: both variants share that cost alike, so the ratio is what compares.
import http from "node:http";
import { randomBytes } from "node:crypto";
import { startProsody } from "../../local-stack/prosody.js";
import { startRedisSentinel } from "../../local-stack/redis-sentinel.js";
import { startFleet } from "../../test/helpers/fleet.js";
import { startGateway } from "../../test/helpers/gateway.js";
import type { Teardown } from "../../test/helpers/stack.js";
import { progress } from "../common/progress.js";
import type { LatencySummary } from "../common/stats.js";
import { runLoad } from "../ratios/load.js";

const DEVICES = Array.from({ length: 10 }, (_, i) => `wait-bench-${i}`);
const CONCURRENCY = 32;

export interface KeyedTrial {
  waitReplicas: number;
  rate: number;
  errors: number;
  latencyMs: LatencySummary;
}

function post(port: number, agent: http.Agent, device: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: `/devices/${device}/BULB/ON`,
        agent,
        headers: { "Idempotency-Key": randomBytes(8).toString("hex"), "Content-Type": "text/plain" },
      },
      (res) => {
        res.resume();
        res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
      },
    );
    req.on("error", reject);
    req.end("on");
  });
}

export async function runKeyedRequests(trials: number, durationS: number, teardown: Teardown): Promise<KeyedTrial[]> {
  const [redis, prosody] = await Promise.all([startRedisSentinel(), startProsody()]);
  teardown.stopLater("redis", redis);
  teardown.stopLater("prosody", prosody);
  const url = `redis://127.0.0.1:${await redis.primaryPort()}`;
  const fleet = teardown.stopLater("fleet", await startFleet(prosody, DEVICES, () => (_req, res) => res.end("ok")));
  void fleet;
  const results: KeyedTrial[] = [];
  for (let i = 0; i < trials; i++) {
    for (const waitReplicas of [0, 1]) {
      progress(`keyed requests through the gateway, trial ${i + 1}/${trials}: REDIS_WAIT_REPLICAS=${waitReplicas}`);
      const gw = await startGateway({ redis: { url }, prosody }, { REDIS_WAIT_REPLICAS: String(waitReplicas) });
      const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
      const port = Number(new URL(gw.url).port);
      try {
        const r = await runLoad((device) => post(port, agent, device), {
          concurrency: CONCURRENCY,
          targets: DEVICES,
          warmupMs: 1_000,
          durationMs: durationS * 1000,
          drainMs: 5_000,
        });
        results.push({ waitReplicas, rate: Math.round(r.rate), errors: r.errors, latencyMs: r.latencyMs });
      } finally {
        agent.destroy();
        await gw.stop();
      }
    }
  }
  return results;
}
