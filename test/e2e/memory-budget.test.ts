// The instance's budget for request and reply bytes held in memory (GATEWAY_MAX_BUFFERED_BYTES): many large
// uploads at once, held by a slow device, take what fits; the rest are refused at once with 503
// GW_OVERLOADED (their bodies not kept), small requests still pass, and every byte is given back.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { echoDevice, sha256, type EchoReport } from "../helpers/echo-device.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const UPLOAD = 512 * 1024;
const HELD = 4;
/** Four uploads exactly, plus room for small requests and the devices' small replies. */
const BUDGET = HELD * UPLOAD + 64 * 1024;
const CLIENTS = 20;
const BIG_REPLY = randomBytes(256 * 1024);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A POST with a body, declared (Content-Length) or chunked; resolves with the whole answer. */
function post(url: string, body: Buffer, declared: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "POST",
      agent: false,
      headers: { "Content-Type": "application/octet-stream", ...(declared ? { "Content-Length": String(body.length) } : {}) },
    });
    req.on("response", (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on("error", reject);
    });
    // The gateway may answer (503) and close before the whole body is written: that is its right.
    req.on("error", (err) => reject(err));
    if (declared) req.end(body);
    else {
      // In pieces, so the gateway cannot know the size up front.
      for (let i = 0; i < body.length; i += 64 * 1024) req.write(body.subarray(i, i + 64 * 1024));
      req.end();
    }
  });
}

describe("memory budget for request and reply bodies", { timeout: 120_000 }, () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  const gate: Array<() => void> = [];
  let arrived = 0;

  const buffered = async () => (await gw.gateway.metrics.bufferedBytes.get()).values[0]?.value ?? -1;
  const refusals = async () =>
    (await gw.gateway.metrics.admissionRefusals.get()).values.find((v) => v.labels.reason === "memory")?.value ?? 0;

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater(
      "gateway",
      await startGateway(stack, {
        GATEWAY_MAX_BUFFERED_BYTES: String(BUDGET),
        GATEWAY_MAX_BODY_BYTES: String(1024 * 1024),
        GATEWAY_MAX_REPLY_BYTES: String(1024 * 1024),
        GATEWAY_DEVICE_MAX_IN_FLIGHT: "64",
        GATEWAY_REQUEST_TIMEOUT_MS: "60000",
      }),
    );
    teardown.stopLater(
      "fleet",
      await startFleet(
        stack.prosody,
        ["mem-dev"],
        (id) => {
          const echo = echoDevice(id);
          // `/hold...` waits until the test lets it go, then reports what it got (a small JSON reply).
          return (req: IncomingMessage, res: ServerResponse) => {
            // `/big`: a reply larger than what is left of the budget while the uploads are held (chunked).
            if (req.url === "/big") return void res.end(BIG_REPLY);
            if (!req.url?.startsWith("/hold")) return echo(req, res);
            arrived++;
            gate.push(() => echo(req, res));
          };
        },
        { localTimeoutMs: 60_000 },
      ),
    );
  });
  after(async () => {
    for (const go of gate.splice(0)) go();
    await teardown.run();
  });

  it("holds what fits, refuses the rest with 503 GW_OVERLOADED, serves small requests throughout, and gives every byte back", async () => {
    assert.equal(await buffered(), 0);
    const bodies = Array.from({ length: CLIENTS }, () => randomBytes(UPLOAD));
    const answers = bodies.map((b) => post(`${gw.url}/devices/mem-dev/hold`, b, true));
    // The device holds the ones that fit; every other one is answered without waiting for them.
    await pollUntil("the uploads within the budget held by the device", () => arrived === HELD, { timeoutMs: 30_000 });
    const settled = await pollUntil(
      "the others refused",
      async () => {
        const done = await Promise.all(answers.map((a) => Promise.race([a, Promise.resolve(undefined)])));
        return done.filter((a) => a !== undefined).length === CLIENTS - HELD ? done : undefined;
      },
      { timeoutMs: 30_000 },
    );
    for (const a of settled) {
      if (!a) continue;
      assert.equal(a.status, 503);
      const body = JSON.parse(a.body.toString()) as { error: { code: string } };
      assert.equal(body.error.code, "GW_OVERLOADED");
      assert.equal(a.headers["retry-after"], "1");
    }
    assert.equal(await refusals(), CLIENTS - HELD);
    assert.ok((await buffered()) >= HELD * UPLOAD, "the held uploads are counted");
    assert.ok((await buffered()) <= BUDGET);

    // A body with no declared length is refused as its bytes come, not after they were all kept.
    const chunked = await post(`${gw.url}/devices/mem-dev/hold`, randomBytes(UPLOAD), false);
    assert.equal(chunked.status, 503);
    assert.equal((JSON.parse(chunked.body.toString()) as { error: { code: string } }).error.code, "GW_OVERLOADED");
    assert.equal(arrived, HELD, "no refused upload reached the device");

    // Small requests still pass while the budget is nearly full.
    const small = Buffer.from("small body");
    const during = await post(`${gw.url}/devices/mem-dev/small`, small, true);
    assert.equal(during.status, 200);
    assert.equal((JSON.parse(during.body.toString()) as EchoReport).bodySha256, sha256(small));

    // A device reply that cannot be held fails its exchange with a catalogue error, not the instance.
    const big = await fetch(`${gw.url}/devices/mem-dev/big`);
    assert.equal(big.status, 503);
    assert.equal(((await big.json()) as { error: { code: string } }).error.code, "GW_OVERLOADED");

    // Let the held ones go: each reaches the device byte-exact.
    for (const go of gate.splice(0)) go();
    const done = await Promise.all(answers);
    const through = done.filter((a) => a.status === 200);
    assert.equal(through.length, HELD);
    const sent = new Set(bodies.map((b) => sha256(b)));
    for (const a of through) {
      const report = JSON.parse(a.body.toString()) as EchoReport;
      assert.equal(report.bodyLength, UPLOAD);
      assert.ok(sent.has(report.bodySha256), "the device got one client's body, byte for byte");
    }
    await pollUntil("every byte given back", async () => (await buffered()) === 0, { timeoutMs: 10_000 });

    // And after: a large upload fits again, and so does the large reply.
    const bigAfter = await fetch(`${gw.url}/devices/mem-dev/big`);
    assert.equal(bigAfter.status, 200);
    assert.equal(sha256(Buffer.from(await bigAfter.arrayBuffer())), sha256(BIG_REPLY));
    const again = randomBytes(UPLOAD);
    const after = await post(`${gw.url}/devices/mem-dev/large`, again, true);
    assert.equal(after.status, 200);
    assert.equal((JSON.parse(after.body.toString()) as EchoReport).bodySha256, sha256(again));
    await pollUntil("given back again", async () => (await buffered()) === 0, { timeoutMs: 10_000 });
  });

  it("keeps an asynchronous request's body counted until its delivery ends, after the 202", async () => {
    const body = randomBytes(UPLOAD);
    const before = arrived;
    const accepted = await fetch(`${gw.url}/devices/mem-dev/hold-async`, { method: "POST", headers: { Prefer: "respond-async" }, body });
    assert.equal(accepted.status, 202);
    await pollUntil("at the device", () => arrived === before + 1, { timeoutMs: 10_000 });
    assert.ok((await buffered()) >= UPLOAD, "the 202 is out, but the body is still held for the delivery");
    for (const go of gate.splice(0)) go();
    const location = accepted.headers.get("location") ?? "";
    const done = await pollUntil(
      "delivered",
      async () => {
        const r = await fetch(`${gw.url}${location}`);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 10_000 },
    );
    assert.equal(((await done.json()) as EchoReport).bodySha256, sha256(body));
    await pollUntil("given back", async () => (await buffered()) === 0, { timeoutMs: 10_000 });
  });

  it("gives the bytes of an upload back when its client goes away mid-body", async () => {
    const req = http.request(`${gw.url}/devices/mem-dev/hold`, {
      method: "POST",
      agent: false,
      headers: { "Content-Length": String(UPLOAD) },
    });
    req.on("error", () => undefined);
    req.write(randomBytes(UPLOAD / 2));
    await pollUntil("the declared length reserved", async () => (await buffered()) === UPLOAD, { timeoutMs: 10_000 });
    req.destroy();
    await pollUntil("given back", async () => (await buffered()) === 0, { timeoutMs: 10_000 });
  });
});
