// The core path against real servers: client → gateway → Prosody → device agent → device HTTP server, and back.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import request from "supertest";
import type { ErrorBody } from "../../gateway/errors.js";
import { echoDevice, sha256, type EchoReport } from "../helpers/echo-device.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";
import { metricValue } from "../helpers/metrics.js";
import { pollUntil } from "../../local-stack/ports.js";

const DEVICES = Array.from({ length: 20 }, (_, i) => `dev-${i}`);

describe("core path: HTTP request to a device over XEP-0332 and back", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  const served = new Map<string, number>();

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    // The longest correlation hold: a record is written only for an exchange not answered within a second.
    gw = teardown.stopLater(
      "gateway",
      await startGateway(stack, { GATEWAY_MAX_BODY_BYTES: String(2 * 1024 * 1024), GATEWAY_CORRELATION_HOLD_MS: "1000" }),
    );
    teardown.stopLater(
      "fleet",
      await startFleet(stack.prosody, DEVICES, (id) => {
        const handler = echoDevice(id);
        return (req, res) => {
          served.set(id, (served.get(id) ?? 0) + 1);
          handler(req, res);
        };
      }),
    );
  });
  after(() => teardown.run());

  for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const) {
    it(`carries ${method} with its path, raw query string and body`, async () => {
      const body = method === "GET" || method === "OPTIONS" ? undefined : `{"method":"${method}"}`;
      let req = request(gw.url)[method.toLowerCase() as "get"]("/devices/dev-1/BULB/ON?x=1&y=%20two&flag");
      if (body) req = req.set("Content-Type", "application/json").send(body);
      const res = await req.expect(200);
      const report = res.body as EchoReport;
      assert.equal(report.device, "dev-1");
      assert.equal(report.method, method);
      assert.equal(report.url, "/BULB/ON?x=1&y=%20two&flag");
      assert.equal(report.bodyLength, body?.length ?? 0);
      if (body) assert.equal(report.bodySha256, sha256(body));
    });
  }

  it("carries HEAD: status and headers, no body", async () => {
    const res = await request(gw.url).head("/devices/dev-2/TEMPERATURE").expect(200);
    assert.equal(res.headers["x-device"], "dev-2");
    assert.equal(res.headers["content-type"], "application/json");
    assert.deepEqual(res.body, {});
  });

  it("keeps repeated request headers, in order, and strips hop-by-hop ones", async () => {
    const res = await request(gw.url)
      .get("/devices/dev-3/headers")
      // superagent sends an array as repeated header lines; its types only admit that for Cookie.
      .set("X-Multi", ["one", "two"] as unknown as string)
      .set("X-Custom", "kept")
      .set("Connection", "keep-alive, X-Drop-Me")
      .set("X-Drop-Me", "gone")
      .set("Keep-Alive", "timeout=5")
      .expect(200);
    const raw = (res.body as EchoReport).rawHeaders;
    const pairs = raw.flatMap((v, i) => (i % 2 === 0 ? [[v.toLowerCase(), raw[i + 1]]] : []));
    assert.deepEqual(
      pairs.filter(([n]) => n === "x-multi").map(([, v]) => v),
      ["one", "two"],
    );
    assert.ok(pairs.some(([n, v]) => n === "x-custom" && v === "kept"));
    assert.ok(!pairs.some(([n]) => n === "x-drop-me" || n === "keep-alive"), "hop-by-hop headers reached the device");
    assert.ok(
      pairs.some(([n, v]) => n === "x-request-id" && v === res.headers["x-request-id"]),
      "device sees the request id",
    );
  });

  it("keeps repeated response headers", async () => {
    const res = await request(gw.url).get("/devices/dev-3/multi").expect(200);
    assert.deepEqual(res.headers["set-cookie"], ["a=1; Path=/", "b=2; Path=/"]);
    assert.equal(res.headers["x-multi"], "first, second");
    assert.equal(res.text, "multi");
  });

  it("carries a 1 MiB random binary body up and down byte-exact (chunked both ways)", async () => {
    const body = randomBytes(1024 * 1024);
    const res = await request(gw.url)
      .post("/devices/dev-4/echo")
      .set("Content-Type", "application/octet-stream")
      .send(body)
      .buffer(true)
      .parse((r, cb) => {
        const parts: Buffer[] = [];
        r.on("data", (c: Buffer) => parts.push(c));
        r.on("end", () => cb(null, Buffer.concat(parts)));
      })
      .expect(200);
    assert.equal(res.headers["x-body-sha256"], sha256(body), "device received other bytes");
    assert.ok(Buffer.isBuffer(res.body));
    assert.equal(res.body.length, body.length);
    assert.ok(res.body.equals(body), "client received other bytes");
  });

  it("carries unicode text byte-exact, inline and chunked", async () => {
    // 1: small inline; 1400: ~63 KB inline <text>, spread over several TCP reads (a multi-byte character
    // split between reads must survive); 20000: ~900 KB, chunked.
    for (const repeat of [1, 1400, 20_000]) {
      const text = "température 23.5 °C — ☃ 😀 é\u0301 中文\n".repeat(repeat);
      const res = await request(gw.url).post("/devices/dev-5/echo").set("Content-Type", "text/plain; charset=utf-8").send(text).expect(200);
      assert.equal(res.headers["x-body-sha256"], sha256(text));
      assert.equal(res.text, text);
    }
  });

  it("passes the device's own 404 and 500 through unchanged", async () => {
    for (const status of [404, 500]) {
      const res = await request(gw.url).get(`/devices/dev-6/status/${status}`).expect(status);
      assert.equal(res.text, `device dev-6 says ${status}`);
      assert.equal(res.headers["content-type"], "text/plain; charset=utf-8");
      assert.equal(res.headers["x-device"], "dev-6");
    }
  });

  it("answers an offline device with 503 GW_DEVICE_OFFLINE at once, not at the deadline", async () => {
    // The deadline is 30 s; the 5 s test timeout fails the test if the gateway waited for it.
    const res = await request(gw.url).get("/devices/not-connected/TEMPERATURE").timeout(5000).expect(503);
    const { error } = res.body as ErrorBody;
    assert.equal(error.code, "GW_DEVICE_OFFLINE");
    assert.equal(error.deviceId, "not-connected");
    assert.ok(Number(res.headers["retry-after"]) > 0);
  });

  it("answers 500 concurrent requests over 20 devices, each with its own reply", async () => {
    const sent = Array.from({ length: 500 }, (_, i) => ({
      device: DEVICES[i % DEVICES.length] as string,
      token: `t${i}-${randomBytes(4).toString("hex")}`,
    }));
    const replies = await Promise.all(sent.map(({ device, token }) => request(gw.url).get(`/devices/${device}/q?token=${token}`)));
    replies.forEach((res, i) => {
      const { device, token } = sent[i] as { device: string; token: string };
      assert.equal(res.status, 200, `request ${i}: ${res.text}`);
      assert.equal((res.body as EchoReport).device, device);
      assert.equal((res.body as EchoReport).url, `/q?token=${token}`);
    });
    assert.equal(gw.gateway.pending.size, 0, "exchanges left pending");
  });

  it("refuses a body over the limit with 413, declared or streamed, without reaching the device", async () => {
    const big = Buffer.alloc(2 * 1024 * 1024 + 1, 1);
    const before = served.get("dev-7") ?? 0;
    const declared = await request(gw.url).post("/devices/dev-7/echo").send(big).expect(413);
    assert.equal((declared.body as ErrorBody).error.code, "GW_PAYLOAD_TOO_LARGE");
    // Chunked transfer coding: no Content-Length, so the limit is found while reading.
    const res = await fetch(`${gw.url}/devices/dev-7/echo`, {
      method: "POST",
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 3; i++) c.enqueue(new Uint8Array(1024 * 1024));
          c.close();
        },
      }),
      duplex: "half",
    });
    assert.equal(res.status, 413);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "GW_PAYLOAD_TOO_LARGE");
    assert.equal(served.get("dev-7") ?? 0, before, "the device was reached");
  });

  it("shrugs off a client that hangs up in the middle of its body: the device is not reached", async () => {
    const before = served.get("dev-9") ?? 0;
    const socket = connect(Number(new URL(gw.url).port), "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write("POST /devices/dev-9/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial");
    const closed = new Promise((resolve) => socket.once("close", resolve));
    socket.destroy();
    await closed;
    const res = await request(gw.url).get("/devices/dev-9/after").expect(200);
    assert.equal((res.body as EchoReport).url, "/after");
    assert.equal(served.get("dev-9"), before + 1, "only the second request reached the device");
  });

  it("refuses bad device ids with 400 GW_BAD_DEVICE_ID", async () => {
    for (const path of ["/devices/bad%40id/x", "/devices/a..b%2F/x", `/devices/${"x".repeat(65)}/x`, "/devices//x", "/devices"]) {
      const res = await request(gw.url).get(path);
      assert.equal(res.status, 400, path);
      assert.equal((res.body as ErrorBody).error.code, "GW_BAD_DEVICE_ID", path);
    }
  });

  it("sets X-Request-Id on every response, keeping a sane one from the client", async () => {
    const given = await request(gw.url).get("/devices/dev-8/x").set("X-Request-Id", "abc-123").expect(200);
    assert.equal(given.headers["x-request-id"], "abc-123");
    const made = await request(gw.url).get("/nope").expect(404);
    assert.match(made.headers["x-request-id"] as string, /^[0-9a-f-]{36}$/);
    const { error } = made.body as ErrorBody;
    assert.equal(error.code, "GW_NOT_FOUND");
    assert.equal(error.requestId, made.headers["x-request-id"]);
  });

  it("refuses CONNECT and other methods XEP-0332 does not carry with 405", async () => {
    const res = await fetch(`${gw.url}/devices/dev-8/x`, { method: "PROPFIND" });
    assert.equal(res.status, 405);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "GW_METHOD_NOT_ALLOWED");
  });

  it("holds each exchange's correlation record on the instance: an exchange answered meanwhile never reaches Redis", async () => {
    const records = async (fate: string) =>
      metricValue(await gw.gateway.metrics.registry.metrics(), "gateway_correlation_records_total", { fate });
    const before = { written: await records("written"), unneeded: await records("unneeded") };
    for (let i = 0; i < 10; i++) await request(gw.url).get("/devices/dev-9/TEMPERATURE").expect(200);
    const written = (await records("written")) - before.written;
    const unneeded = (await records("unneeded")) - before.unneeded;
    assert.equal(written + unneeded, 10, "each exchange's record is counted once, written or not");
    assert.ok(unneeded >= 1, `records of exchanges answered within the hold are never written (${written} written)`);
    // Any record that was written (an exchange slower than the hold) is removed after its exchange.
    const left = async () => (await gw.gateway.redis.client.keys(`${gw.config.redis.keyPrefix}corr:*`)).length;
    await pollUntil("no correlation record left", async () => (await left()) === 0, { timeoutMs: 10_000 });
  });

  it("reports health and readiness", async () => {
    await request(gw.url).get("/healthz").expect(200);
    const ready = await request(gw.url).get("/readyz").expect(200);
    assert.deepEqual((ready.body as { checks: unknown }).checks, { redis: true, xmpp: true, accepting: true });
  });
});
