// Device slots in a real Redis (limits/device-limiter.ts): a slot taken is in the device's set and goes at
// its release, with a notice on the device's channel; slots given back in one tick go in one command, each
// with its notice, and each release's wake-up (or afterReleases()) comes once that command is sent (an
// attempt then sees it free).
import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { pino } from "pino";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { commandCounts } from "../helpers/redis-probes.js";
import { RedisStore } from "../../gateway/redis/client.js";
import { DeviceLimiter, type SlotAttempt } from "../../gateway/limits/device-limiter.js";

let server: RedisServer;
let redis: RedisStore;
let limiter: DeviceLimiter;

before(async () => {
  server = await startRedis();
  redis = new RedisStore({ url: server.url, keyPrefix: "dl:", commandTimeoutMs: 2000 }, { logger: pino({ level: "silent" }) });
  await redis.start();
});
beforeEach(async () => {
  limiter = new DeviceLimiter(redis, { instanceId: "gw-a", retryAfterS: 1 });
  await redis.run((c) => c.flushdb());
});
after(async () => {
  await redis.stop();
  await server.stop();
});

function taken(attempt: SlotAttempt): () => void {
  assert.ok(attempt.taken, "a slot");
  return attempt.release;
}

const inUse = (deviceId: string) => redis.run((c) => c.zcard(redis.keys.deviceSlots(deviceId)));

/** The notices published on the devices' channels until `count` have come. */
async function notices(deviceIds: string[], count: number, during: () => Promise<void>): Promise<string[]> {
  const subscriber = (redis.client as import("ioredis").Redis).duplicate();
  try {
    await subscriber.connect();
    await subscriber.subscribe(...deviceIds.map((d) => limiter.channel(d)));
    const got: string[] = [];
    const all = new Promise<void>((resolve) =>
      subscriber.on("message", (channel: string, message: string) => {
        got.push(`${channel} ${message}`);
        if (got.length === count) resolve();
      }),
    );
    await during();
    await all;
    return got.sort();
  } finally {
    subscriber.disconnect();
  }
}

describe("device limiter", () => {
  it("takes a slot in the device's set, and its release removes it with a notice on the device's channel", async () => {
    const release = taken(await limiter.tryAcquire("dev-1", 2, 5000));
    assert.equal(await inUse("dev-1"), 1);
    const got = await notices(["dev-1"], 1, async () => {
      release();
      release(); // a second release is a no-op
      await new Promise<void>((resolve) => process.nextTick(resolve)); // sent at the end of the tick
      assert.equal(await inUse("dev-1"), 0);
    });
    assert.deepEqual(got, [`${limiter.channel("dev-1")} gw-a`]);
  });

  it("sends the slots given back in one tick in one command, each with its notice; each wake-up comes after it is sent", async () => {
    const devices = ["dev-1", "dev-2", "dev-3"];
    const afterWake: Array<Promise<number>> = [];
    const releases = await Promise.all(
      devices.map(async (d) => taken(await limiter.tryAcquire(d, 2, 5000, () => afterWake.push(inUse(d))))),
    );
    await redis.run((c) => c.config("RESETSTAT"));
    const got = await notices(devices, 3, async () => {
      for (const release of releases) release();
      // As SlotReuse asks, for a slot given back without a wake-up of its own.
      limiter.afterReleases(() => afterWake.push(inUse("dev-1")));
      assert.equal(afterWake.length, 0, "no wake-up before the command is sent");
      await new Promise<void>((resolve) => process.nextTick(resolve));
      // Read in each wake-up, on the same connection: answered after the releases.
      assert.deepEqual(await Promise.all(afterWake), [0, 0, 0, 0]);
      let atOnce = false;
      limiter.afterReleases(() => (atOnce = true));
      assert.ok(atOnce, "with nothing waiting to be sent, at once");
    });
    assert.deepEqual(got, devices.map((d) => `${limiter.channel(d)} gw-a`).sort());
    const calls = await commandCounts(server.port);
    assert.equal(calls.eval + calls.evalsha, 1, "one script call for the three releases");
  });

  it("renews slots in one command, for a new lifetime from Redis's now, while their device has a slot free; a slot gone stays gone", async () => {
    const key = (deviceId: string) => redis.keys.deviceSlots(deviceId);
    const score = async (deviceId: string, id: string) => Number(await redis.run((c) => c.zscore(key(deviceId), id)));
    const first = await limiter.tryAcquire("dev-1", 4, 1000);
    const full = await limiter.tryAcquire("dev-2", 1, 1000);
    const gone = await limiter.tryAcquire("dev-3", 4, 1000);
    assert.ok(first.taken && full.taken && gone.taken && first.renewable && full.renewable && gone.renewable);
    gone.release();
    await new Promise<void>((resolve) => process.nextTick(resolve)); // the release is sent at the end of the tick
    const [before, fullBefore] = [await score("dev-1", first.renewable.id), await score("dev-2", full.renewable.id)];
    const scripts = async () => ((c) => c.eval + c.evalsha)(await commandCounts(server.port));
    const scriptsBefore = await scripts();
    const refused = await limiter.renew([
      { slot: first.renewable, lifetimeMs: 60_000, maxInFlight: 4 },
      { slot: full.renewable, lifetimeMs: 60_000, maxInFlight: 1 },
      { slot: gone.renewable, lifetimeMs: 60_000, maxInFlight: 4 },
    ]);
    assert.deepEqual(refused, [1, 2], "the full device's slot and the slot given back are not renewed");
    assert.equal((await scripts()) - scriptsBefore, 1, "one command for the three");
    const after = await score("dev-1", first.renewable.id);
    assert.ok(after >= before + 59_000, `renewed: score ${before} -> ${after}`);
    assert.ok((await redis.run((c) => c.pttl(key("dev-1")))) > 59_000, "the set lives as long as its latest slot");
    assert.equal(await score("dev-2", full.renewable.id), fullBefore, "with every slot taken, left as it was");
    assert.equal(await inUse("dev-3"), 0, "not brought back");
    first.release();
    full.release();
  });
});
