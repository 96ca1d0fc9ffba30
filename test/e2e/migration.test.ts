// Migrating a fleet: the same device answers the same way over XMPP (through its agent), over HTTP (through
// the gateway's pass-through) and directly; and its transport can be switched live, under load, with every
// request served by exactly one path.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { startFleet, type Fleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const ADMIN_TOKEN = "migration-admin-token-0123";
/** Headers that belong to one connection or one hop, not to the device's answer. */
const PER_HOP = new Set(["date", "connection", "keep-alive", "transfer-encoding", "x-request-id", "content-length"]);

interface Seen {
  token: string;
  via: "agent" | "proxy";
}

/** A legacy device: answers by path, and records which way each request reached it. */
function legacyDevice(id: string, seen: Seen[]) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const body = Buffer.concat(parts);
      const url = new URL(req.url ?? "/", "http://device");
      const token = url.searchParams.get("token");
      if (token) seen.push({ token, via: req.headers["x-forwarded-for"] ? "proxy" : "agent" });
      res.setHeader("X-Device", id);
      if (url.pathname === "/planted") {
        // A planted difference: the answer depends on the path the request came by.
        res.end(req.headers["x-forwarded-for"] ? "over http" : "over xmpp");
      } else if (url.pathname === "/status") {
        res.statusCode = Number(url.searchParams.get("code") ?? 200);
        res.setHeader("Content-Type", "text/plain; charset=utf-8");
        res.end(`status ${res.statusCode}`);
      } else if (url.pathname === "/echo") {
        res.setHeader("Content-Type", req.headers["content-type"] ?? "application/octet-stream");
        res.appendHeader("Set-Cookie", "a=1");
        res.appendHeader("Set-Cookie", "b=2");
        res.end(body);
      } else if (url.pathname === "/big") {
        res.setHeader("Content-Type", "application/octet-stream");
        res.end(createHash("sha512").update(url.search).digest().toString("hex").repeat(3000));
      } else {
        res.setHeader("Content-Type", "application/json");
        res.end(JSON.stringify({ device: id, method: req.method, path: url.pathname, query: url.search, length: body.length }));
      }
    });
  };
}

interface Answer {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(url, init);
  const headers: Array<[string, string]> = [];
  res.headers.forEach((value, name) => {
    if (!PER_HOP.has(name)) headers.push([name, value]);
  });
  headers.sort(([a], [b]) => a.localeCompare(b));
  return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) };
}

describe("migrating a device from HTTP to XMPP", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let fleet: Fleet;
  const seen: Seen[] = [];
  const admin = (id: string, body: unknown, method = "PUT") =>
    fetch(`${gw.url}/admin/devices/${id}`, {
      method,
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater("gateway", await startGateway(stack, { GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN }));
    fleet = teardown.stopLater("fleet", await startFleet(stack.prosody, ["mig-1", "mig-2"], (id) => legacyDevice(id, seen)));
  });
  after(() => teardown.run());

  it("answers a corpus of requests the same over XMPP, over HTTP, and straight from the device", async () => {
    const device = fleet.byId("mig-1");
    const corpus: Array<[string, RequestInit]> = [
      ["/reading?unit=c&x=%20y", {}],
      ["/reading", { method: "HEAD" }],
      ["/reading", { method: "DELETE" }],
      ["/reading", { method: "OPTIONS" }],
      ["/status?code=404", {}],
      ["/status?code=500", {}],
      ["/status?code=204", { method: "PUT", body: "x" }],
      ["/echo", { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"state":"on","name":"Küche ☃"}' }],
      ["/echo", { method: "PATCH", headers: { "Content-Type": "application/octet-stream" }, body: randomBytes(70_000) }],
      ["/echo", { method: "POST", headers: { "Content-Type": "text/plain" }, body: "line one\r\nline two\r\n" }],
      ["/big?seed=1", {}],
    ];
    for (const transport of ["xmpp", "http"] as const) {
      assert.equal((await admin("mig-1", { transport, httpTarget: device.server.url })).status < 300, true);
      for (const [path, init] of corpus) {
        const direct = await call(`${device.server.url}${path}`, init);
        const through = await call(`${gw.url}/devices/mig-1${path}`, init);
        const what = `${transport} ${init.method ?? "GET"} ${path}`;
        assert.equal(through.status, direct.status, what);
        assert.ok(through.body.equals(direct.body), `${what}: body differs`);
        assert.deepEqual(through.headers, direct.headers, `${what}: headers differ`);
      }
    }
  });

  it("switches transports live under load: no request fails, each is served by exactly one path", async () => {
    const device = fleet.byId("mig-2");
    assert.equal((await admin("mig-2", { transport: "http", httpTarget: device.server.url })).status < 300, true);
    let stop = false;
    const failures: string[] = [];
    const sent: string[] = [];
    const load = async () => {
      while (!stop) {
        const token = randomBytes(6).toString("hex");
        sent.push(token);
        const res = await fetch(`${gw.url}/devices/mig-2/reading?token=${token}`);
        const text = await res.text();
        if (res.status !== 200 || !text.includes(`token=${token}`)) failures.push(`${res.status} ${text.slice(0, 100)}`);
      }
    };
    const loops = Array.from({ length: 4 }, load);
    const viaCount = () => ({ agent: seen.filter((s) => s.via === "agent").length, proxy: seen.filter((s) => s.via === "proxy").length });
    for (const transport of ["xmpp", "http", "xmpp", "http"] as const) {
      const before = viaCount();
      assert.equal((await admin("mig-2", { transport }, "PATCH")).status, 200);
      // Let some requests flow on the new path before the next switch.
      const on = (c: { agent: number; proxy: number }) => (transport === "xmpp" ? c.agent : c.proxy);
      await pollUntil(`20 requests over ${transport}`, () => on(viaCount()) >= on(before) + 20, { timeoutMs: 30_000, intervalMs: 5 });
    }
    stop = true;
    await Promise.all(loops);
    assert.deepEqual(failures, []);
    const counts = new Map<string, number>();
    for (const s of seen) counts.set(s.token, (counts.get(s.token) ?? 0) + 1);
    for (const token of sent) assert.equal(counts.get(token), 1, `request ${token} reached the device ${counts.get(token) ?? 0} times`);
    const { agent, proxy } = viaCount();
    process.stdout.write(`# cut-over: ${sent.length} requests, ${agent} over XMPP, ${proxy} over HTTP\n`);
    assert.ok(agent >= 40 && proxy >= 40);
  });

  it("shadow mode: answers over HTTP, compares with XMPP, finds a planted difference, never duplicates unsafe requests", async () => {
    const device = fleet.byId("mig-2");
    assert.equal((await admin("mig-2", { transport: "shadow", httpTarget: device.server.url })).status < 300, true);
    const comparisons = async (outcome: string) =>
      (await gw.gateway.metrics.shadowComparisons.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.url}/devices/mig-2/reading?token=shadow-${i}`);
      assert.equal(res.status, 200);
      // Both paths reached the device, and the client got the HTTP one.
      await pollUntil("both paths", () => seen.filter((s) => s.token === `shadow-${i}`).length === 2, { timeoutMs: 15_000 });
    }
    await pollUntil("three matches", async () => (await comparisons("match")) === 3, { timeoutMs: 15_000 });
    assert.equal(await comparisons("mismatch"), 0, "agreeing answers are not mismatches");

    assert.equal(await (await fetch(`${gw.url}/devices/mig-2/planted`)).text(), "over http");
    await pollUntil("the planted mismatch", async () => (await comparisons("mismatch")) === 1, { timeoutMs: 15_000 });

    const before = seen.length;
    assert.equal((await fetch(`${gw.url}/devices/mig-2/echo?token=unsafe-1`, { method: "POST", body: "once" })).status, 200);
    assert.equal(seen.length, before + 1, "an unsafe request went to the device more than once");
    assert.equal(seen[seen.length - 1]?.via, "proxy");

    const view = (await (await fetch(`${gw.url}/admin/migration`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as {
      devices: { registered: number; byTransport: Record<string, number> };
      shadowMismatches: Record<string, number>;
    };
    assert.equal(view.devices.byTransport.shadow, 1);
    assert.deepEqual(view.shadowMismatches, { "mig-2": 1 });
    const scrape = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(scrape, /^gateway_devices\{transport="shadow"\} 1$/m);
    assert.match(scrape, /^gateway_shadow_mismatches_total 1$/m);
  });

  it("falls back to HTTP for an offline XMPP device with fallback: http", async () => {
    const device = fleet.byId("mig-1");
    assert.equal((await admin("mig-1", { transport: "xmpp", httpTarget: device.server.url, fallback: "http" })).status < 300, true);
    await device.agent.stop(); // the device's agent goes away; its HTTP server is still there
    const res = await fetch(`${gw.url}/devices/mig-1/reading?token=fallback-1`);
    assert.equal(res.status, 200);
    assert.equal(seen.find((s) => s.token === "fallback-1")?.via, "proxy");
  });
});
