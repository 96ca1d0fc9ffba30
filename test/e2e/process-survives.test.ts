// The process-level guarantee: a gateway run as operators run it (its own process, gateway/main.ts) goes
// through every error path of its HTTP side — every hostile legacy-device reply through each way to the
// pass-through, requests that are not valid HTTP, bodies over the limit, clients that hang up or reset
// mid-body and mid-response — and is afterwards the same process (same PID), still ready, still serving a
// well-behaved device byte-exact, with no error having reached the process level
// (gateway_unexpected_errors_total stays 0: the crash policy in process-guard.ts never had to act).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.js";
import { HOSTILE_REPLIES, startHostileAndGoodDevices } from "../helpers/hostile-http-replies.js";
import { send } from "../helpers/raw-http-device.js";
import { startStack, Teardown } from "../helpers/stack.js";

const ADMIN_TOKEN = "process-survives-admin-token";
const MAX_BODY = 64 * 1024;
/** At most this many requests at once (below a device's default in-flight limit of 16). */
const POOL = 8;

/** Runs `fns` with at most `width` at a time. */
async function pool(width: number, fns: Array<() => Promise<unknown>>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < fns.length) await (fns[next++] as () => Promise<unknown>)();
    }),
  );
}

/** Writes `bytes` on a connection of its own, then either waits for the server to end it or ends it itself. */
function rawClient(port: number, bytes: Buffer | string, then: "read" | "destroy" | "reset"): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let got = "";
    socket.on("data", (d: Buffer) => (got += d.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(got));
    socket.on("connect", () => {
      socket.write(bytes, () => {
        if (then === "destroy") socket.destroy();
        else if (then === "reset") socket.resetAndDestroy();
      });
    });
  });
}

/** Sends a request, and hangs up as soon as the response's first bytes arrive (mid-response). */
function hangUpOnFirstByte(port: number, path: string, then: "destroy" | "reset"): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.on("error", () => undefined);
    socket.on("close", () => resolve());
    socket.once("data", () => (then === "reset" ? socket.resetAndDestroy() : socket.destroy()));
    socket.on("connect", () => socket.write(`GET ${path} HTTP/1.1\r\nHost: gw\r\nX-Gateway-Timeout: 3000\r\n\r\n`));
  });
}

describe("the gateway process survives every error path of its HTTP side", { timeout: 180_000 }, () => {
  const teardown = new Teardown();
  let gw: GatewayProcess;
  let pid: number;
  let goodUrl: string;

  const admin = (id: string, body: unknown) =>
    fetch(`${gw.url}/admin/devices/${id}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  async function assertServing(): Promise<void> {
    assert.equal(gw.child.hasExited(), false, `the gateway process exited:\n${gw.child.output()}`);
    assert.equal(gw.child.pid, pid);
    assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
    const body = randomBytes(30_000);
    const seen = await send(`${goodUrl}/echo`, { method: "POST", body, headers: { "content-type": "application/octet-stream" } });
    assert.ok(seen.status === 200 && seen.complete && seen.body.equals(body), "the well-behaved device's answer is not byte-exact");
  }

  before(async () => {
    const stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater(
      "gateway",
      await startGatewayProcess(stack, {
        GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN,
        GATEWAY_MAX_BODY_BYTES: String(MAX_BODY),
        LOG_LEVEL: "info", // its "started" line tells the port it got (port 0)
      }),
    );
    pid = gw.child.pid;
    const { raw, good } = await startHostileAndGoodDevices(teardown);
    for (const [id, entry] of Object.entries({
      "legacy-http": { transport: "http" },
      "legacy-shadow": { transport: "shadow" },
      "legacy-fallback": { transport: "xmpp", fallback: "http" },
    })) {
      assert.ok((await admin(id, { ...entry, httpTarget: raw.url })).status < 300);
    }
    assert.ok((await admin("good", { transport: "http", httpTarget: good.url })).status < 300);
    assert.ok((await admin("offline", { transport: "xmpp" })).status < 300);
    goodUrl = `${gw.url}/devices/good`;
    await assertServing();
  });
  after(() => teardown.run());

  it("every hostile legacy-device reply, through http, shadow and fallback", async () => {
    const statuses: number[] = [];
    const runs: Array<() => Promise<unknown>> = [];
    for (const route of ["http", "shadow", "fallback"]) {
      HOSTILE_REPLIES.forEach((c, index) => {
        runs.push(async () => {
          const headers = { "X-Gateway-Timeout": String(c.deadlineMs ?? 3000) };
          const init = c.postBody ? { method: "POST", body: randomBytes(c.postBody), headers } : { headers };
          const seen = await send(`${gw.url}/devices/legacy-${route}/case/${index}`, init);
          if (seen.complete && seen.status !== undefined) statuses.push(seen.status);
        });
      });
    }
    await pool(POOL, runs);
    // Each answered one is the device's (relayed) or a catalogue 502/504; never a 500 (an error nobody expected).
    assert.ok(statuses.length > 0);
    assert.deepEqual(
      statuses.filter((s) => s === 500),
      [],
    );
    await assertServing();
  });

  it("requests that are not valid HTTP/1.1", async () => {
    const answers = await Promise.all([
      rawClient(gw.port, "GARBAGE\r\n\r\n", "read"),
      rawClient(gw.port, "GET /devices/good/x HTTP/1.1\r\nHost: gw\r\nX-A: a\x01b\r\n\r\n", "read"),
      rawClient(gw.port, "GET /devices/good/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", "read"),
      rawClient(gw.port, "GET /devices/good/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "read"),
      rawClient(gw.port, `GET /devices/good/${"a".repeat(20_000)} HTTP/1.1\r\nHost: gw\r\n\r\n`, "read"),
      rawClient(gw.port, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "read"),
      rawClient(gw.port, Buffer.from("16030100a5010000a10303", "hex"), "read"),
    ]);
    for (const answer of answers) assert.match(answer, /^HTTP\/1\.1 4\d\d /, JSON.stringify(answer.slice(0, 200)));
    await assertServing();
  });

  it("bodies over the limit, declared and streamed, to each transport", async () => {
    const big = randomBytes(MAX_BODY + 1);
    // The legacy devices keep silent (a device that answered early would get its answer relayed, then cut).
    const silence = HOSTILE_REPLIES.findIndex((c) => c.name === "silence until the deadline");
    assert.ok(silence >= 0);
    const declared = ["legacy-http", "legacy-shadow", "legacy-fallback", "good", "offline"].map((id) => `/devices/${id}/case/${silence}`);
    const streamed = ["legacy-http", "legacy-shadow", "legacy-fallback", "offline"].map((id) => `/devices/${id}/case/${silence}`);
    const statuses = await Promise.all([
      ...declared.map((path) =>
        send(`${gw.url}${path}`, { method: "POST", body: big, headers: { "X-Gateway-Timeout": "3000" } }).then((s) => s.status),
      ),
      // Streamed: chunked, no Content-Length to refuse it by.
      ...streamed.map((path) =>
        rawClient(
          gw.port,
          `POST ${path} HTTP/1.1\r\nHost: gw\r\nX-Gateway-Timeout: 3000\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n${big.toString("latin1")}\r\n0\r\n\r\n`,
          "read",
        ).then((answer) => Number(answer.slice(9, 12)) || undefined),
      ),
    ]);
    assert.deepEqual(
      statuses,
      statuses.map(() => 413),
    );
    await assertServing();
  });

  it("clients that hang up or reset mid-body and mid-response", async () => {
    const head = (id: string) =>
      `POST /devices/${id}/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 50000\r\nX-Gateway-Timeout: 3000\r\n\r\n${"x".repeat(1000)}`;
    const trickle = HOSTILE_REPLIES.findIndex((c) => c.name === "body that trickles on past the deadline");
    assert.ok(trickle >= 0);
    await Promise.all([
      ...["legacy-http", "legacy-shadow", "legacy-fallback", "good", "offline"].flatMap((id) => [
        rawClient(gw.port, head(id), "destroy"),
        rawClient(gw.port, head(id), "reset"),
      ]),
      hangUpOnFirstByte(gw.port, `/devices/legacy-http/case/${trickle}`, "destroy"),
      hangUpOnFirstByte(gw.port, `/devices/legacy-shadow/case/${trickle}`, "reset"),
      hangUpOnFirstByte(gw.port, `/devices/legacy-fallback/case/${trickle}`, "destroy"),
      hangUpOnFirstByte(gw.port, "/devices/good/x", "reset"),
    ]);
    await assertServing();
  });

  it("afterwards: the same process, no error reached the process level, and it stops cleanly on SIGTERM", async () => {
    await assertServing();
    assert.equal(await gw.metric("gateway_unexpected_errors_total"), 0);
    // The series exist (the guard is installed), so the 0 above is a count, not an absence.
    const scrape = await (await fetch(`${gw.url}/metrics`)).text();
    assert.match(scrape, /^gateway_unexpected_errors_total\{kind="uncaught_exception"\} 0$/m);
    assert.match(scrape, /^gateway_unexpected_errors_total\{kind="unhandled_rejection"\} 0$/m);
    await gw.stop();
    const exit = await gw.child.exited;
    assert.equal(exit.code, 0, gw.child.output());
    await pollUntil("exited", () => gw.child.hasExited(), { timeoutMs: 5000 });
  });
});
