// REDIS_WAIT_REPLICAS (README, "Redis Sentinel"): an Idempotency-Key's claim, and an accepted asynchronous
// request, must reach that many replicas (WAIT) before the gateway goes on. With the replication link broken
// (the replica offers a password its primary does not have, so it cannot reconnect), a keyed request fails with
// 503 GW_STORE_UNAVAILABLE without reaching the device, and its key is free again: once the link is back, the
// same request runs, once. Without REDIS_WAIT_REPLICAS the same request runs at once, its claim on the primary
// only: the write a failover would lose.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
import { redisCommand } from "../../local-stack/redis.js";
import { startRedisSentinel, type SentinelDeployment } from "../../local-stack/redis-sentinel.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { Teardown, testComponents } from "../helpers/stack.js";

const DEVICE = "wait-dev";
/** The device of the gateway without REDIS_WAIT_REPLICAS (on a component domain of its own: Prosody gives one connection each). */
const PLAIN_DEVICE = "wait-dev-plain";

describe("REDIS_WAIT_REPLICAS: a key's claim reaches the replica before the device is reached", () => {
  const teardown = new Teardown();
  let redis: SentinelDeployment;
  let prosody: ProsodyServer;
  let primary: number;
  let replica: number;
  let waiting: RunningGateway;
  let plain: RunningGateway;
  /** Requests that reached the device, by path. */
  const hits = new Map<string, number>();

  before(async () => {
    const components = testComponents(2);
    const second = components[1] as (typeof components)[0];
    const [r, p] = await Promise.allSettled([startRedisSentinel(), startProsody({ components })]);
    if (r.status === "fulfilled") redis = teardown.stopLater("redis", r.value);
    if (p.status === "fulfilled") prosody = teardown.stopLater("prosody", p.value);
    if (r.status === "rejected") throw r.reason;
    if (p.status === "rejected") throw p.reason;
    primary = await redis.primaryPort();
    replica = redis.dataPorts.find((port) => port !== primary) as number;
    const url = `redis://127.0.0.1:${primary}`;
    const prefix = `wr-${randomBytes(3).toString("hex")}:`;
    waiting = teardown.stopLater(
      "gateway with REDIS_WAIT_REPLICAS=1",
      await startGateway({ redis: { url }, prosody }, { REDIS_KEY_PREFIX: prefix, REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "200" }),
    );
    plain = teardown.stopLater(
      "gateway without",
      await startGateway({ redis: { url }, prosody: { ...prosody, components: [second] } }, { REDIS_KEY_PREFIX: prefix }),
    );
    const handler = (_id: string) => (req: IncomingMessage, res: ServerResponse) => {
      req.resume().on("end", () => {
        const path = req.url ?? "";
        hits.set(path, (hits.get(path) ?? 0) + 1);
        res.end(`done ${path}`);
      });
    };
    teardown.stopLater("device", await startFleet(prosody, [DEVICE], handler));
    teardown.stopLater("plain device", await startFleet(prosody, [PLAIN_DEVICE], handler, { gatewayJid: second.domain }));
  });
  after(() => teardown.run());

  function post(gw: RunningGateway, path: string, key: string, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${gw.url}/devices/${gw === plain ? PLAIN_DEVICE : DEVICE}${path}`, {
      method: "POST",
      body: "x",
      headers: { "Idempotency-Key": key, ...headers },
    });
  }

  async function breakReplication(): Promise<() => Promise<void>> {
    await redisCommand(replica, ["CONFIG", "SET", "masterauth", "not-the-primarys"]);
    await redisCommand(primary, ["CLIENT", "KILL", "TYPE", "replica"]);
    await pollUntil("the replica to lose its link", async () =>
      (await redisCommand(replica, ["INFO", "replication"])).includes("master_link_status:down"),
    );
    return async () => {
      await redisCommand(replica, ["CONFIG", "SET", "masterauth", ""]);
      await pollUntil(
        "the replica to be in sync again",
        async () => (await redisCommand(replica, ["INFO", "replication"])).includes("master_link_status:up"),
        { timeoutMs: 30_000 },
      );
    };
  }

  it("with the replica in sync, a keyed request runs once and its claim is on the replica when it answers", async () => {
    const key = `k-${randomBytes(4).toString("hex")}`;
    const res = await post(waiting, "/in-sync", key);
    assert.deepEqual([res.status, await res.text()], [200, "done /in-sync"]);
    assert.equal(hits.get("/in-sync"), 1);
  });

  it("with the link broken: 503 GW_STORE_UNAVAILABLE, the device not reached, the key free; once the link is back, the same request runs once", async () => {
    const key = `k-${randomBytes(4).toString("hex")}`;
    const restore = await breakReplication();
    try {
      const refused = await post(waiting, "/broken-link", key);
      assert.equal(refused.status, 503);
      assert.equal(((await refused.json()) as { error: { code: string } }).error.code, "GW_STORE_UNAVAILABLE");
      const asyncRefused = await post(waiting, "/broken-link-async", `${key}-a`, { Prefer: "respond-async" });
      assert.equal(asyncRefused.status, 503, "an asynchronous request is not accepted either");
      await asyncRefused.body?.cancel();
      assert.equal(hits.get("/broken-link"), undefined, "the device was not reached");
      // Without REDIS_WAIT_REPLICAS: runs at once, its claim on the primary only.
      const unguarded = await post(plain, "/unguarded", `${key}-u`);
      assert.deepEqual([unguarded.status, await unguarded.text()], [200, "done /unguarded"]);
    } finally {
      await restore();
    }
    const again = await post(waiting, "/broken-link", key);
    assert.deepEqual([again.status, await again.text()], [200, "done /broken-link"], "the key was taken back: the retry runs");
    assert.equal(hits.get("/broken-link"), 1);
    const replay = await post(waiting, "/broken-link", key);
    assert.deepEqual([replay.status, await replay.text()], [200, "done /broken-link"]);
    assert.equal(hits.get("/broken-link"), 1, "a replay after it gets the kept outcome");
  });
});
