// Proves the test harness against the real servers: Redis and Prosody start, answer, restart
// on the same ports, and leave no process or open port behind.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { once } from "node:events";
import { setTimeout } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { startDeviceServer } from "../helpers/http-device.js";
import { isPortOpen, pollUntil, waitForPort } from "../../local-stack/ports.js";
import { isAlive, spawnChild } from "../../local-stack/process.js";
import { startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
import { redisCommand, startRedis, type RedisServer } from "../../local-stack/redis.js";
import { startStack, Teardown } from "../helpers/stack.js";

const teardown = new Teardown();
after(async () => {
  assert.deepEqual(await teardown.run(), []);
});

/** A raw TCP conversation: enough XMPP to prove auth and component handshakes really work. */
async function rawConnect(port: number) {
  const socket = net.connect({ port, host: "127.0.0.1" });
  await once(socket, "connect");
  let received = "";
  socket.setEncoding("utf8").on("data", (text: string) => (received += text));
  return {
    send: (text: string) => socket.write(text),
    waitFor: (pattern: RegExp, timeoutMs = 3_000) =>
      pollUntil(`${pattern} on port ${port} (got ${JSON.stringify(received.slice(-300))})`, () => pattern.exec(received) ?? undefined, {
        timeoutMs,
        intervalMs: 5,
      }),
    close: () => socket.destroy(),
  };
}

/** SASL PLAIN over plain-text c2s (allowed on loopback by the test config). */
async function saslPlain(port: number, vhost: string, username: string, password: string): Promise<string> {
  const c = await rawConnect(port);
  try {
    c.send(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${vhost}' version='1.0'>`,
    );
    await c.waitFor(/<mechanism>PLAIN<\/mechanism>/);
    const token = Buffer.from(`\0${username}\0${password}`).toString("base64");
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${token}</auth>`);
    const [, outcome] = await c.waitFor(/<(success|failure)\b/);
    return outcome ?? "";
  } finally {
    c.close();
  }
}

/** XEP-0114 handshake: true if Prosody accepts the secret for the domain. */
async function componentHandshake(port: number, domain: string, secret: string): Promise<boolean> {
  const c = await rawConnect(port);
  try {
    c.send(`<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}'>`);
    const [, id] = await c.waitFor(/<stream:stream[^>]*\sid=['"]([^'"]+)['"]/);
    c.send(`<handshake>${createHash("sha1").update(`${id}${secret}`).digest("hex")}</handshake>`);
    const [reply] = await c.waitFor(/<handshake\s*\/>|<stream:error/);
    return reply.startsWith("<handshake");
  } finally {
    c.close();
  }
}

describe("process helper", () => {
  it("keeps output and escalates to SIGKILL when SIGTERM is ignored", async () => {
    const script = "process.on('SIGTERM', () => console.log('ignoring SIGTERM')); console.log('ready'); setInterval(() => {}, 1000);";
    const child = await spawnChild(process.execPath, ["-e", script], { name: "stubborn" });
    teardown.add("stubborn", () => child.stop("SIGKILL"));
    await pollUntil("the child to print ready", () => child.output().includes("ready"));
    await child.stop("SIGTERM", 300);
    assert.equal((await child.exited).signal, "SIGKILL");
    assert.equal(isAlive(child.pid), false);
    await child.stop(); // no-op once exited
  });

  it("rejects clearly when the binary does not exist", async () => {
    await assert.rejects(spawnChild("no-such-binary-for-harness", [], { name: "ghost" }), /ghost: failed to start/);
  });
});

describe("redis helper", () => {
  let redis: RedisServer;
  before(async () => {
    redis = teardown.stopLater("redis", await startRedis());
  });

  it("answers PING, also through its url", async () => {
    assert.equal(await redisCommand(redis.port, ["PING"]), "PONG");
    assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`);
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      await client.set("harness", "before-restart");
      assert.equal(await client.get("harness"), "before-restart");
    } finally {
      client.disconnect();
    }
  });

  it("restarts on the same port, empty (no persistence)", async () => {
    const { port, pid } = redis;
    await redis.restart();
    assert.equal(redis.port, port);
    assert.notEqual(redis.pid, pid);
    assert.equal(isAlive(pid), false);
    assert.equal(await redisCommand(redis.port, ["PING"]), "PONG");
    assert.equal(await redisCommand(redis.port, ["GET", "harness"]), "");
  });

  it("comes back after a SIGKILL", async () => {
    const { pid } = redis;
    await redis.kill();
    assert.equal(isAlive(pid), false);
    assert.equal(await isPortOpen(redis.port), false);
    await redis.restart();
    assert.equal(await redisCommand(redis.port, ["PING"]), "PONG");
  });

  it("stops: process gone, port closed, dir removed", async () => {
    const { pid, port, dir } = redis;
    await redis.stop();
    assert.equal(isAlive(pid), false);
    assert.equal(await isPortOpen(port), false);
    assert.equal(existsSync(dir), false);
  });
});

describe("redis helper, persistent", () => {
  let redis: RedisServer;
  before(async () => {
    redis = teardown.stopLater("persistent redis", await startRedis({ persistent: true }));
  });

  it("keeps every acknowledged write across a SIGKILL and a restart on the same port", async () => {
    assert.equal(redis.persistent, true);
    for (let i = 0; i < 20; i++) assert.equal(await redisCommand(redis.port, ["SET", `k${i}`, `v${i}`]), "OK");
    assert.equal(await redisCommand(redis.port, ["RPUSH", "list", "a"]), "1");
    const { pid, port } = redis;
    await redis.kill();
    assert.equal(isAlive(pid), false);
    await redis.restart();
    assert.equal(redis.port, port);
    assert.notEqual(redis.pid, pid);
    for (let i = 0; i < 20; i++) assert.equal(await redisCommand(redis.port, ["GET", `k${i}`]), `v${i}`);
    assert.equal(await redisCommand(redis.port, ["LPOP", "list"]), "a");
    assert.ok(existsSync(path.join(redis.dir, "appendonlydir")), "the append-only files are in its dir");
  });

  it("is not the default: a plain one comes back empty", async () => {
    const plain = teardown.stopLater("plain redis", await startRedis());
    assert.equal(plain.persistent, false);
    await redisCommand(plain.port, ["SET", "gone", "yes"]);
    await plain.kill();
    await plain.restart();
    assert.equal(await redisCommand(plain.port, ["GET", "gone"]), "");
  });
});

describe("prosody helper", () => {
  const components = [
    { domain: "gateway.localhost", secret: "gw-secret" },
    { domain: "other.localhost", secret: "other-secret", conflictResolve: "kick_old" as const },
  ];
  const users = Array.from({ length: 50 }, (_, i) => ({ username: `dev${i + 1}`, password: `pw${i + 1}` }));
  let prosody: ProsodyServer;
  before(async () => {
    prosody = teardown.stopLater("prosody", await startProsody({ components }));
  });

  it("exposes its ports as xmpp:// services", () => {
    assert.equal(prosody.service, `xmpp://127.0.0.1:${prosody.c2sPort}`);
    assert.equal(prosody.componentService, `xmpp://127.0.0.1:${prosody.componentPort}`);
    assert.equal(prosody.vhost, "localhost");
  });

  it("creates 50 accounts through the shell, and they are listed", async () => {
    await prosody.createUsers(users);
    const listed = new Set(await prosody.listUsers());
    for (const u of users) assert.ok(listed.has(`${u.username}@localhost`), `${u.username} missing`);
  });

  it("an account authenticates over c2s; a wrong password does not", async () => {
    assert.equal(await saslPlain(prosody.c2sPort, "localhost", "dev7", "pw7"), "success");
    assert.equal(await saslPlain(prosody.c2sPort, "localhost", "dev7", "wrong"), "failure");
  });

  it("accepts each component with its secret, and only with it", async () => {
    for (const c of components) assert.equal(await componentHandshake(prosody.componentPort, c.domain, c.secret), true);
    assert.equal(await componentHandshake(prosody.componentPort, "gateway.localhost", "nope"), false);
  });

  it("surfaces shell errors", async () => {
    await assert.rejects(prosody.shell(['user:create("dev1@localhost", "x")']), /User exists/);
  });

  it("creates an account it already made only once", async () => {
    await prosody.createUsers([
      { username: "dev1", password: "pw1" },
      { username: "once-more", password: "p" },
    ]);
    assert.ok((await prosody.listUsers()).includes("once-more@localhost"));
  });

  it("restarts on the same ports and keeps its accounts", async () => {
    const { pid, c2sPort, componentPort } = prosody;
    await prosody.restart();
    assert.notEqual(prosody.pid, pid);
    assert.equal(isAlive(pid), false);
    assert.deepEqual([prosody.c2sPort, prosody.componentPort], [c2sPort, componentPort]);
    assert.equal(await saslPlain(prosody.c2sPort, "localhost", "dev50", "pw50"), "success");
  });

  it("stops: process gone, ports closed, dir removed", async () => {
    const { pid, c2sPort, componentPort, dir } = prosody;
    await prosody.stop();
    assert.equal(isAlive(pid), false);
    assert.equal(await isPortOpen(c2sPort), false);
    assert.equal(await isPortOpen(componentPort), false);
    assert.equal(existsSync(dir), false);
  });
});

describe("device server", () => {
  it("serves requests and stops at once despite keep-alive connections", async () => {
    const device = await startDeviceServer((req, res) => res.end(`hello ${req.url}`));
    teardown.stopLater("device", device);
    // Neither side ever closes the idle connection by itself (no server keep-alive timeout, an agent that keeps
    // its sockets): a stop() that waited for it would never end, so the bound below is no guess at a duration.
    device.server.keepAliveTimeout = 0;
    const agent = new http.Agent({ keepAlive: true });
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get(`${device.url}/status`, { agent }, (res) => {
          let text = "";
          res
            .setEncoding("utf8")
            .on("data", (c: string) => (text += c))
            .on("end", () => resolve(text))
            .on("error", reject);
        })
        .on("error", reject);
    });
    assert.equal(body, "hello /status");
    await pollUntil("the connection to go back to the agent, idle", () => Object.values(agent.freeSockets).flat().length === 1);
    const socket = Object.values(agent.freeSockets).flat()[0];
    assert.ok(socket && !socket.destroyed, "the idle keep-alive connection is open");
    const bound = new AbortController();
    const stopped = await Promise.race([
      device.stop().then(() => "stopped"),
      setTimeout(30_000, "still waiting", { signal: bound.signal }).catch(() => "aborted"),
    ]);
    bound.abort();
    assert.equal(stopped, "stopped", "stop() waited for idle keep-alive connections");
    await pollUntil("the server to drop the idle connection", () => socket.destroyed);
    agent.destroy();
    assert.equal(await isPortOpen(device.port), false);
  });
});

describe("stack", () => {
  it("starts Redis and Prosody together and stops both", async () => {
    const stack = teardown.stopLater("stack", await startStack());
    assert.equal(await redisCommand(stack.redis.port, ["PING"]), "PONG");
    await waitForPort(stack.prosody.c2sPort);
    assert.deepEqual(stack.prosody.components, [{ domain: "gateway.localhost", secret: "test-secret" }]);
    const pids = [stack.redis.pid, stack.prosody.pid];
    await stack.stop();
    for (const pid of pids) assert.equal(isAlive(pid), false);
  });

  it("Teardown runs cleanups in reverse and keeps going past a failure", async () => {
    const order: string[] = [];
    const reported: string[] = [];
    const t = new Teardown({ report: (m) => reported.push(m) });
    t.add("first", () => order.push("first"));
    t.add("broken", () => {
      throw new Error("boom");
    });
    t.add("last", () => Promise.resolve(order.push("last")));
    const errors = await t.run();
    assert.deepEqual(order, ["last", "first"]);
    assert.equal(errors.length, 1);
    assert.match(errors[0]?.message ?? "", /cleanup "broken" failed: boom/);
    assert.equal(reported.length, 1);
    assert.deepEqual(await t.run(), []); // already ran: nothing left
  });
});
