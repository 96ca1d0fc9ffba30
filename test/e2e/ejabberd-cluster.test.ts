// Two ejabberd nodes in one Mnesia cluster (local-stack/ejabberd-cluster.ts), one gateway attached to each
// node's component listener on the same component domain, devices logged in on both nodes. ejabberd delivers
// a stanza for the component domain to a connection on the node that handles it when it has one (its
// router prefers local routes), so a device's reply reaches the gateway on the device's node: a request
// through the other gateway is answered by forwarding between instances, through Redis. Then the node of an
// agent given both nodes' addresses is SIGKILLed: the agent moves to the other node, and requests through
// the gateway there answer again.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { DeviceAgent } from "../../adapters/device-agent/agent.js";
import { el } from "../../lib/xep0332/xml.js";
import { startEjabberdCluster, type EjabberdCluster } from "../../local-stack/ejabberd-cluster.js";
import type { EjabberdServer } from "../../local-stack/ejabberd.js";
import { pollUntil } from "../../local-stack/ports.js";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";
import { agentOptions, startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startDeviceServer, type DeviceHandler } from "../helpers/http-device.js";
import { scrapeMetric } from "../helpers/metrics.js";
import { Teardown } from "../helpers/stack.js";
import { startPeer } from "../helpers/xmpp-peer.js";

const ON_NODE_1 = ["c1-0", "c1-1", "c1-2"];
const ON_NODE_2 = ["c2-0", "c2-1", "c2-2"];
const ROAMER = "roamer";

describe("ejabberd cluster: two nodes, a gateway on each, devices on both", () => {
  const teardown = new Teardown();
  let cluster: EjabberdCluster;
  let node1: EjabberdServer;
  let node2: EjabberdServer;
  let gatewayA: RunningGateway;
  let gatewayB: RunningGateway;
  let roamer: DeviceAgent;
  const onlineAt: string[] = []; // the server of each `agent online` of the roamer

  before(async () => {
    const t0 = Date.now();
    const [r, c] = await Promise.allSettled([startRedis(), startEjabberdCluster({ nodes: 2 })]);
    if (r.status === "fulfilled") teardown.stopLater("redis", r.value);
    if (c.status === "fulfilled") teardown.stopLater("ejabberd cluster", c.value);
    if (r.status === "rejected") throw r.reason;
    if (c.status === "rejected") throw c.reason;
    const redis: RedisServer = r.value;
    cluster = c.value;
    [node1, node2] = cluster.nodes as [EjabberdServer, EjabberdServer];
    process.stdout.write(`# cluster of 2 ejabberd nodes and Redis up in ${Date.now() - t0} ms\n`);
    // One key space: the two gateways are instances of one deployment.
    const prefix = `ejc-${randomBytes(3).toString("hex")}:`;
    gatewayA = teardown.stopLater(
      "gateway A",
      await startGateway({ redis, prosody: node1 }, { REDIS_KEY_PREFIX: prefix, GATEWAY_INSTANCE_ID: "ejc-a" }),
    );
    gatewayB = teardown.stopLater(
      "gateway B",
      await startGateway({ redis, prosody: node2 }, { REDIS_KEY_PREFIX: prefix, GATEWAY_INSTANCE_ID: "ejc-b" }),
    );
    const handler =
      (id: string): DeviceHandler =>
      (_req, res) =>
        res.end(`hello from ${id}`);
    teardown.stopLater("devices on node 1", await startFleet(node1, ON_NODE_1, handler));
    teardown.stopLater("devices on node 2", await startFleet(node2, ON_NODE_2, handler));

    // The agent under test: both nodes, node 1 first.
    // Accounts once, for the whole cluster (Mnesia replicates them): the roamer, and two chat users.
    await cluster.createUsers([ROAMER, "alice", "bob"].map((username) => ({ username, password: `pw-${username}` })));
    const device = teardown.stopLater("roamer's device", await startDeviceServer((_req, res) => res.end(`hello from ${ROAMER}`)));
    const log = {
      info: (fields: Record<string, unknown>) => void (fields.event === "online" && onlineAt.push(String(fields.server))),
      warn: () => undefined,
    };
    roamer = teardown.stopLater(
      "roamer",
      new DeviceAgent(agentOptions(node1, ROAMER, device.url, { service: `${node1.service},${node2.service}` }), { log }),
    );
    await roamer.start();
    await roamer.waitOnline(20_000);
  });
  after(() => teardown.run());

  it("is one cluster: list_cluster on each node names both, and a message from a user on node 1 reaches a user on node 2", async () => {
    for (const node of [node1, node2]) assert.deepEqual((await cluster.listCluster(node)).sort(), [node1.node, node2.node].sort());
    const alice = await startPeer(node1, "alice", { createAccount: false });
    teardown.stopLater("alice", alice);
    const bob = await startPeer(node2, "bob", { createAccount: false });
    teardown.stopLater("bob", bob);
    // Sent again until one arrives: node 1 learns of bob's session on node 2 a moment after bob has it
    // (ejabberd replicates its session table), and a chat message to a full JID it does not know yet goes
    // nowhere (one fresh-clone run).
    const prefix = `across the cluster ${randomBytes(4).toString("hex")}`;
    let sent = 0;
    const got = await pollUntil(
      "bob to receive one of alice's messages",
      async () => {
        const arrived = bob.received.find((s) => s.is("message") && s.getChildText("body")?.startsWith(prefix) === true);
        if (!arrived) await alice.send(el("message", { to: bob.jid, type: "chat" }, el("body", {}, `${prefix} #${++sent}`)));
        return arrived;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    assert.match(String(got.attrs.from), /^alice@localhost\//);
  });

  it("answers requests through each gateway to devices on the other node, replies forwarded between the instances", async () => {
    const forwardedBefore = await forwarded();
    const pairs = [
      ...ON_NODE_2.map((id) => ({ via: gatewayA, id })),
      ...ON_NODE_1.map((id) => ({ via: gatewayB, id })),
      // and some to the gateway's own node, for comparison
      ...ON_NODE_1.map((id) => ({ via: gatewayA, id })),
      ...ON_NODE_2.map((id) => ({ via: gatewayB, id })),
    ];
    const results = await Promise.all(
      pairs.map(async ({ via, id }) => {
        const res = await fetch(`${via.url}/devices/${id}/hello`);
        return { id, via: via === gatewayA ? "A" : "B", status: res.status, body: await res.text() };
      }),
    );
    for (const r of results) assert.deepEqual([r.status, r.body], [200, `hello from ${r.id}`], `${r.id} via ${r.via}`);
    const crossed = (await forwarded()) - forwardedBefore;
    process.stdout.write(
      `# ${pairs.length} requests, ${pairs.length / 2} of them to a device on the other node: ${crossed} replies forwarded between instances\n`,
    );
    assert.ok(crossed >= 1, "no reply was forwarded between the instances");
  });

  it("an agent given both nodes moves to the other when its node is SIGKILLed; requests through the surviving node's gateway answer again", async () => {
    assert.equal(onlineAt[0], node1.service, "the agent starts on the first server of its list");
    const first = await fetch(`${gatewayB.url}/devices/${ROAMER}/hello`);
    assert.deepEqual([first.status, await first.text()], [200, `hello from ${ROAMER}`]);

    const killedAt = Date.now();
    await cluster.kill(node1);
    await pollUntil("the agent to come online on node 2", () => roamer.online && onlineAt.at(-1) === node2.service, { timeoutMs: 30_000 });
    const onlineMs = Date.now() - killedAt;
    const served = await pollUntil(
      "a request through gateway B to answer",
      async () => {
        const res = await fetch(`${gatewayB.url}/devices/${ROAMER}/hello`);
        const body = await res.text();
        return res.status === 200 ? body : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    assert.equal(served, `hello from ${ROAMER}`);
    process.stdout.write(
      `# node 1 SIGKILLed: agent online on node 2 after ${onlineMs} ms, requests answered again after ${Date.now() - killedAt} ms\n`,
    );
    // Gateway A lost its node: it says so to the load balancer.
    await pollUntil("gateway A to be unready", async () => (await fetch(`${gatewayA.url}/readyz`)).status === 503);
    // The devices that were on node 2 all along are not disturbed.
    const other = await fetch(`${gatewayB.url}/devices/${ON_NODE_2[0]}/hello`);
    assert.deepEqual([other.status, await other.text()], [200, `hello from ${ON_NODE_2[0]}`]);
  });

  /** Replies forwarded between instances, both gateways together. */
  async function forwarded(): Promise<number> {
    const counts = await Promise.all(
      [gatewayA, gatewayB].map((g) => scrapeMetric(g.url, "gateway_replies_forwarded_total", { kind: "iq" })),
    );
    return counts.reduce((a, b) => a + b, 0);
  }
});
