// Proves the ejabberd and HAProxy helpers against the real servers: ejabberd starts, takes accounts in
// bulk, lets a device log in, accepts two component connections on one domain and spreads stanzas over
// them, restarts on the same ports and stops without leaving a process behind; HAProxy spreads requests
// round-robin, replays only what is safe to replay, and follows the instances' /readyz.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import xmppComponent from "@xmpp/component";
import type { Component } from "@xmpp/component";
import { el } from "../../lib/xep0332/xml.js";
import { startEjabberd, type EjabberdServer } from "../../local-stack/ejabberd.js";
import { checkHaproxyConfig, HAPROXY_TEMPLATE, renderHaproxyConfig, startHaproxy, type HaproxyServer } from "../../local-stack/haproxy.js";
import { isPortOpen, pollUntil } from "../../local-stack/ports.js";
import { isAlive } from "../../local-stack/process.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { Teardown } from "../helpers/stack.js";
import { startPeer } from "../helpers/xmpp-peer.js";

const { component, xml: componentXml } = xmppComponent;

const teardown = new Teardown();
after(async () => {
  assert.deepEqual(await teardown.run(), []);
});

/** Live processes (zombies excluded) with their command lines. */
function processes(): Array<{ pid: number; comm: string; args: string }> {
  const ps = spawnSync("ps", ["-eo", "pid=,stat=,comm=,args="], { encoding: "utf8" });
  return ps.stdout
    .split("\n")
    .map((line) => /^\s*(\d+)\s+(\S+)\s+(\S+)\s+(.*)$/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null && !(m[2] ?? "").startsWith("Z"))
    .map((m) => ({ pid: Number(m[1]), comm: m[3] ?? "", args: m[4] ?? "" }));
}

const NS_SPREAD = "urn:example:spread-probe";

describe("ejabberd helper", () => {
  let server: EjabberdServer;
  let epmdBefore: Set<number>;
  const users = Array.from({ length: 100 }, (_, i) => ({ username: `dev${i + 1}`, password: `pw-dev${i + 1}` }));

  before(async () => {
    epmdBefore = new Set(
      processes()
        .filter((p) => p.comm === "epmd")
        .map((p) => p.pid),
    );
    server = teardown.stopLater("ejabberd", await startEjabberd());
  });

  it("creates 100 accounts in one import, and a device logs in with PLAIN", async () => {
    await server.createUsers(users);
    const listed = new Set(await server.listUsers());
    assert.equal(users.filter((u) => listed.has(`${u.username}@localhost`)).length, 100);
    // Again, plus one new: only the new one is imported (an existing account would abort the import).
    await server.createUsers([...users, { username: "Extra1", password: "pw-extra1" }]);
    assert.ok((await server.listUsers()).includes("extra1@localhost"));

    const peer = await startPeer(server, "dev7", { createAccount: false });
    teardown.add("peer dev7", () => peer.stop());
    assert.equal(peer.jid, "dev7@localhost/agent");
    await peer.stop();
  });

  it("accepts two component connections on one domain at once and spreads IQs over both", async (t) => {
    const [spec] = server.components;
    assert.ok(spec);
    const served = [0, 0];
    const connections: Component[] = [];
    for (const i of [0, 1] as const) {
      const c = component({ service: server.componentService, domain: spec.domain, password: spec.secret });
      c.reconnect.stop(); // a refused second connection must fail the test, not retry every second
      c.on("error", () => undefined);
      c.iqCallee.get(NS_SPREAD, "query", () => {
        served[i] = (served[i] ?? 0) + 1;
        return componentXml("query", { xmlns: NS_SPREAD });
      });
      teardown.add(`component ${i}`, () => c.stop().catch(() => undefined));
      await c.start(); // resolves once the handshake is accepted ("online")
      connections.push(c);
    }
    assert.deepEqual(
      connections.map((c) => c.status),
      ["online", "online"],
      "both connections authenticated on the same domain",
    );

    const peer = await startPeer(server, "dev8", { createAccount: false });
    teardown.add("peer dev8", () => peer.stop());
    const replies = await Promise.all(Array.from({ length: 40 }, () => peer.query(spec.domain, el("query", { xmlns: NS_SPREAD }))));
    assert.ok(replies.every((r) => r.attrs.type === "result"));
    assert.equal((served[0] ?? 0) + (served[1] ?? 0), 40);
    // Random balancing: each connection gets some (both getting none of 40 is a 2^-39 chance).
    assert.ok((served[0] ?? 0) >= 1 && (served[1] ?? 0) >= 1, `spread over the two connections: ${served.join(" / ")}`);
    t.diagnostic(`IQs per component connection: ${served.join(" / ")}`);

    await peer.stop();
    await Promise.all(connections.map((c) => c.stop()));
  });

  it("restarts on the same ports with the same accounts, and stop leaves no process behind", async () => {
    const { c2sPort, componentPort } = server;
    const oldPid = server.pid;
    await server.restart();
    assert.notEqual(server.pid, oldPid);
    assert.equal(isAlive(oldPid), false);
    assert.equal(await isPortOpen(c2sPort), true);
    assert.equal(await isPortOpen(componentPort), true);
    const peer = await startPeer(server, "dev9", { createAccount: false }); // the account survived
    await peer.stop();
    assert.equal((await server.listUsers()).length, 101);

    const pid = server.pid;
    await server.stop();
    assert.equal(isAlive(pid), false);
    assert.equal(await isPortOpen(c2sPort), false);
    assert.equal(await isPortOpen(componentPort), false);
    const ours = processes().filter((p) => p.args.includes(server.node) || p.args.includes(server.dir));
    assert.deepEqual(ours, [], "no beam.smp, erl_child_setup or ejabberdctl wrapper of ours");
    const newEpmd = processes().filter((p) => p.comm === "epmd" && !epmdBefore.has(p.pid));
    assert.deepEqual(newEpmd, [], "no epmd started");
  });
});

interface Instance {
  name: string;
  port: number;
  ready: boolean;
  /** 'hangup': drop every request (not /readyz) without a byte of answer, like a crash mid-request. */
  mode: "answer" | "hangup";
  seen: string[];
  server: http.Server;
}

/** A stand-in gateway instance: /readyz per `ready`, anything else answered with its name. */
async function startInstance(name: string): Promise<Instance> {
  const instance = { name, ready: true, mode: "answer", seen: [] as string[] } as Instance;
  instance.server = http.createServer((req, res) => {
    if (req.url === "/readyz") {
      res.writeHead(instance.ready ? 200 : 503).end();
      return;
    }
    instance.seen.push(`${req.method} ${req.url}`);
    if (instance.mode === "hangup") {
      req.socket.destroy();
      return;
    }
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "text/plain" }).end(name));
  });
  await new Promise<void>((resolve, reject) => {
    instance.server.once("error", reject);
    instance.server.listen(0, "127.0.0.1", () => resolve());
  });
  instance.port = (instance.server.address() as { port: number }).port;
  teardown.add(`instance ${name}`, () => closeInstance(instance));
  return instance;
}

function closeInstance(instance: Instance): Promise<void> {
  return new Promise((resolve) => {
    instance.server.close(() => resolve());
    instance.server.closeAllConnections();
  });
}

/** One request on a connection of its own (no keep-alive): status and body. */
function request(
  url: string,
  {
    method = "GET",
    path: requestPath = "/",
    body,
    headers = {},
  }: { method?: string; path?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, method, path: requestPath, headers, agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${requestPath}: no answer within 30 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

describe("haproxy helper", () => {
  let a: Instance;
  let b: Instance;
  let lb: HaproxyServer;
  const redispatches = async (server: string): Promise<number> =>
    Number((await lb.showStat()).find((row) => row.pxname === "gateways" && row.svname === server)?.wredis ?? NaN);

  before(async () => {
    a = await startInstance("a");
    b = await startInstance("b");
    lb = teardown.stopLater(
      "haproxy",
      await startHaproxy([
        { name: "ga", port: a.port },
        { name: "gb", port: b.port },
      ]),
    );
  });

  it("renders the shipped template into a config that haproxy -c accepts without a warning", async () => {
    const dir = await makeTempDir("haproxy-check-");
    teardown.add("haproxy check dir", () => removeDir(dir));
    const file = path.join(dir, "haproxy.cfg");
    const rendered = renderHaproxyConfig(await readFile(HAPROXY_TEMPLATE, "utf8"), {
      frontendPort: 8080,
      statsSocket: path.join(dir, "haproxy.sock"),
      servers: [
        { name: "gw1", port: 3001 },
        { name: "gw2", port: 3002 },
      ],
    });
    assert.match(rendered, /^\s+server gw1 127\.0\.0\.1:3001$/m);
    assert.match(rendered, /^\s+server gw2 127\.0\.0\.1:3002$/m);
    await writeFile(file, rendered);
    assert.match(await checkHaproxyConfig(file), /Configuration file is valid/);
    // And the check has teeth.
    await writeFile(file, `${rendered}\n    retry-on sometimes\n`);
    await assert.rejects(checkHaproxyConfig(file), /haproxy -c rejected/);
  });

  it("spreads requests round-robin over the instances", async () => {
    await pollUntil("both servers fully UP", async () => {
      const states = await lb.serverStates();
      return states.ga === "UP" && states.gb === "UP";
    });
    const bodies: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await fetch(`${lb.url}/rr/${i}`); // keep-alive: balanced per request all the same
      assert.equal(res.status, 200);
      bodies.push(await res.text());
    }
    const onA = bodies.filter((x) => x === "a").length;
    assert.equal(onA + bodies.filter((x) => x === "b").length, 20);
    assert.ok(Math.abs(onA - (20 - onA)) <= 1, `round-robin: ${onA} on a, ${20 - onA} on b`);
  });

  it("passes a forward-proxy (absolute-URI) request on unchanged", async () => {
    // As an HTTP client configured with a proxy sends it: Host = the URI's authority. (HAProxy answers
    // 400 when the two differ.)
    const res = await request(lb.url, { path: "http://10.0.0.17:8080/TEMPERATURE/?unit=C", headers: { host: "10.0.0.17:8080" } });
    assert.equal(res.status, 200);
    const seen = [...a.seen, ...b.seen];
    assert.ok(seen.includes("GET http://10.0.0.17:8080/TEMPERATURE/?unit=C"), seen.slice(-3).join(", "));
  });

  it("replays a GET that an instance dropped unanswered on the other one, but never a POST", async () => {
    b.mode = "hangup";
    try {
      const before = await redispatches("gb");
      const bSeen = b.seen.length;
      for (let i = 0; i < 4; i++) assert.deepEqual(await request(lb.url, { path: `/get/${i}` }), { status: 200, body: "a" });
      assert.ok(b.seen.length > bSeen, "some GETs reached b first");
      assert.ok((await redispatches("gb")) > before, "and were redispatched");

      // Round-robin sends one of two consecutive POSTs to b: that one gets 502 and goes nowhere else.
      const aPosts = a.seen.filter((s) => s.startsWith("POST")).length;
      const statuses = [];
      for (let i = 0; i < 2; i++) statuses.push((await request(lb.url, { method: "POST", path: `/post/${i}`, body: "on" })).status);
      assert.deepEqual(statuses.sort(), [200, 502]);
      assert.equal(b.seen.filter((s) => s.startsWith("POST /post/")).length, 1, "b saw the dropped POST once");
      assert.equal(a.seen.filter((s) => s.startsWith("POST")).length - aPosts, 1, "a saw only its own POST");
    } finally {
      b.mode = "answer";
    }
  });

  it("takes an instance out of rotation while its /readyz fails, and back once it passes", async () => {
    b.ready = false;
    await pollUntil("gb to be DOWN", async () => (await lb.serverStates()).gb === "DOWN", { timeoutMs: 15_000 });
    const bSeen = b.seen.length;
    for (let i = 0; i < 10; i++) assert.deepEqual(await request(lb.url, { path: `/down/${i}` }), { status: 200, body: "a" });
    assert.equal(b.seen.length, bSeen, "nothing reached b while DOWN");

    b.ready = true;
    await pollUntil("gb to be UP again", async () => (await lb.serverStates()).gb === "UP", { timeoutMs: 15_000 });
    const bodies = new Set<string>();
    for (let i = 0; i < 4; i++) bodies.add((await request(lb.url, { path: `/up/${i}` })).body);
    assert.deepEqual([...bodies].sort(), ["a", "b"]);
  });

  it("retries a refused connection on the other instance, for any method", async () => {
    const before = await redispatches("gb");
    // Health checks paused, HAProxy keeps gb UP after it is gone: the requests below find its port closed
    // however long they take, instead of racing the check that marks it DOWN (~1 s).
    assert.equal((await lb.command("disable health gateways/gb")).trim(), "");
    await closeInstance(b);
    for (let i = 0; i < 4; i++) {
      const method = i % 2 === 0 ? "GET" : "POST";
      assert.deepEqual(await request(lb.url, { method, path: `/refused/${i}`, body: method === "POST" ? "on" : undefined }), {
        status: 200,
        body: "a",
      });
    }
    assert.ok((await redispatches("gb")) > before, "requests that found b closed were redispatched to a");
    assert.equal((await lb.command("enable health gateways/gb")).trim(), "");
    await pollUntil("gb to be DOWN", async () => (await lb.serverStates()).gb === "DOWN", { timeoutMs: 15_000 });
  });

  it("stops and leaves no haproxy behind", async () => {
    const { pid, port } = lb;
    await lb.stop();
    assert.equal(isAlive(pid), false);
    assert.equal(await isPortOpen(port), false);
  });
});
