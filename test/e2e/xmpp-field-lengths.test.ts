// Strings any XMPP account chooses (IQ ids, stream ids) are checked for shape and length before they reach
// Redis or a log line: an id of hundreds of KB is dropped as foreign at once, counted, and never becomes a
// Redis command of its size. Watched with Redis MONITOR, which sees every command the gateway sends.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { NS_HTTP, NS_SHIM } from "../../lib/xep0332/constants.js";
import { el } from "../../lib/xep0332/xml.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";
import { startPeer, type Peer } from "../helpers/xmpp-peer.js";

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

  const dropped = async (reason: string) => (await gw.gateway.metrics.repliesDropped.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

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
    await peer.send(el("iq", { type: "result", id: "x".repeat(LONG), to: domain }));
    await peer.send(el("iq", { type: "error", id: "y".repeat(LONG), to: domain }, el("error", { type: "cancel" }, el("item-not-found", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }))));
    await pollUntil("both dropped and counted", async () => (await dropped("unknown")) === before + 2, { timeoutMs: 10_000 });
    await monitorCaughtUp();
    assert.deepEqual(longCommands(), []);
  });

  it("drops a chunk with a 200 KB stream id as foreign, before any Redis command", async () => {
    const before = await dropped("unknown");
    await peer.send(el("message", { to: domain }, el("chunk", { xmlns: NS_HTTP, streamId: "s".repeat(LONG), nr: "0", last: "true" }, "AAAA")));
    await pollUntil("dropped and counted", async () => (await dropped("unknown")) === before + 1, { timeoutMs: 10_000 });
    await monitorCaughtUp();
    assert.deepEqual(longCommands(), []);
  });

  it("fails an exchange whose reply announces a 200 KB stream id with 502, without claiming it in Redis", async () => {
    const answer = fetch(`${gw.url}/devices/long-ids/x`);
    const request = await peer.nextRequest(10_000);
    const head = el(
      "resp",
      { xmlns: NS_HTTP, version: "1.1", statusCode: "200", statusMessage: "OK" },
      el("headers", { xmlns: NS_SHIM }, el("header", { name: "Content-Type" }, "application/octet-stream")),
      el("data", {}, el("chunkedBase64", { streamId: "t".repeat(LONG) })),
    );
    await peer.send(el("iq", { type: "result", id: request.id, to: request.from }, head));
    const r = await answer;
    assert.equal(r.status, 502);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, "GW_BAD_DEVICE_REPLY");
    await monitorCaughtUp();
    assert.deepEqual(longCommands(), []);
  });

  it("still takes a reply with the gateway's own id (a well-formed exchange is untouched)", async () => {
    const answer = fetch(`${gw.url}/devices/long-ids/ok`);
    const request = await peer.nextRequest(10_000);
    const resp = el(
      "resp",
      { xmlns: NS_HTTP, version: "1.1", statusCode: "200", statusMessage: "OK" },
      el("headers", { xmlns: NS_SHIM }, el("header", { name: "Content-Type" }, "text/plain")),
      el("data", {}, el("text", {}, "fine")),
    );
    await peer.send(el("iq", { type: "result", id: request.id, to: request.from }, resp));
    const r = await answer;
    assert.equal(r.status, 200);
    assert.equal(await r.text(), "fine");
  });
});
