// Strings any XMPP account chooses (IQ ids, stream ids) are checked for shape and length before they reach
// Redis or a log line: an id of hundreds of KB is dropped as foreign at once, counted, and never becomes a
// Redis command of its size. Watched with Redis MONITOR, which sees every command the gateway sends.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { pollUntil } from "../../local-stack/ports.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";
import { chunk, chunkedHead, iqError, result } from "../helpers/stanzas.js";
import { startPeer, textReply, type Peer } from "../helpers/xmpp-peer.js";

/** Under Prosody's default stanza size limit (256 KiB), so the server carries it to the gateway. */
const LONG = 200 * 1024;
/** No command the gateway sends for these stanzas needs an argument anywhere near this long. */
const MAX_ARG = 4096;

describe("field lengths from XMPP", { timeout: 60_000 }, () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let peer: Peer;
  let domain: string;
  let monitor: Redis;
  let marker: Redis;
  /** The longest argument of each command Redis ran since the monitor started. */
  const seen: Array<{ command: string; longest: number }> = [];

  const dropped = async (reason: string) =>
    (await gw.gateway.metrics.repliesDropped.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

  /** Waits until MONITOR has shown everything Redis ran before now: it streams commands in order. */
  async function monitorCaughtUp(): Promise<void> {
    const token = `caught-up-${Date.now()}-${Math.random()}`;
    await marker.echo(token);
    await pollUntil("the monitor caught up", () => seen.some((s) => s.command === `echo:${token}`), { timeoutMs: 10_000 });
  }

  function longCommands(): Array<{ command: string; longest: number }> {
    return seen.filter((s) => s.longest > MAX_ARG);
  }

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater("gateway", await startGateway(stack, { GATEWAY_REQUEST_TIMEOUT_MS: "10000" }));
    domain = gw.config.xmpp.domain;
    peer = await startPeer(stack.prosody, "long-ids");
    teardown.add("peer", () => peer.stop());
    marker = new Redis(stack.redis.url, { lazyConnect: true });
    await marker.connect();
    teardown.add("marker client", () => marker.quit());
    // monitor() opens a connection of its own; the client it came from is closed with it.
    const base = new Redis(stack.redis.url, { lazyConnect: true });
    monitor = await base.monitor();
    teardown.add("monitor", () => {
      monitor.disconnect();
      base.disconnect();
    });
    monitor.on("monitor", (_time: string, args: string[]) => {
      const [name, ...rest] = args;
      const command = name?.toLowerCase() === "echo" ? `echo:${rest[0] ?? ""}` : (name ?? "").toLowerCase();
      seen.push({ command, longest: Math.max(0, ...args.map((a) => a.length)) });
    });
    await monitorCaughtUp();
  });
  after(() => teardown.run());

  it("drops an IQ result with a 200 KB id as foreign, before any Redis command", async () => {
    const before = await dropped("unknown");
    await peer.send(result({ id: "x".repeat(LONG), from: domain }));
    await peer.send(iqError({ id: "y".repeat(LONG), from: domain }, "item-not-found"));
    await pollUntil("both dropped and counted", async () => (await dropped("unknown")) === before + 2, { timeoutMs: 10_000 });
    await monitorCaughtUp();
    assert.deepEqual(longCommands(), []);
  });

  it("drops a chunk with a 200 KB stream id as foreign, before any Redis command", async () => {
    const before = await dropped("unknown");
    await peer.send(chunk(domain, "s".repeat(LONG), 0, "AAAA", true));
    await pollUntil("dropped and counted", async () => (await dropped("unknown")) === before + 1, { timeoutMs: 10_000 });
    await monitorCaughtUp();
    assert.deepEqual(longCommands(), []);
  });

  it("fails an exchange whose reply announces a 200 KB stream id with 502, without claiming it in Redis", async () => {
    const answer = fetch(`${gw.url}/devices/long-ids/x`);
    const request = await peer.nextRequest(10_000);
    await peer.send(result(request, chunkedHead("t".repeat(LONG))));
    const r = await answer;
    assert.equal(r.status, 502);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, "GW_BAD_DEVICE_REPLY");
    await monitorCaughtUp();
    assert.deepEqual(longCommands(), []);
  });

  it("still takes a reply with the gateway's own id (a well-formed exchange is untouched)", async () => {
    const answer = fetch(`${gw.url}/devices/long-ids/ok`);
    const request = await peer.nextRequest(10_000);
    await peer.send(textReply(request, "fine"));
    const r = await answer;
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "fine");
  });
});
