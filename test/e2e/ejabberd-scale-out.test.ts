// Several gateway processes on ONE ejabberd component domain. ejabberd spreads the domain's stanzas over
// the connections at random, so about two thirds of all replies and chunks reach an instance that did not
// send the request: they must be forwarded to their owner through Redis, and every client must get its own
// reply, byte-exact, chunked bodies included.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { EjabberdServer } from "../../local-stack/ejabberd.js";
import type { RedisServer } from "../../local-stack/redis.js";
import { startFleet } from "../helpers/fleet.js";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.js";
import { startEjabberdStack, Teardown } from "../helpers/stack.js";

const DEVICES = Array.from({ length: 20 }, (_, i) => `ej-${i}`);
const REQUESTS = 1000;
const CONCURRENCY = 50;

/** The large reply for a device and token: deterministic, so the client can check every byte. */
function bigBody(device: string, token: string): Buffer {
  const seed = createHash("sha256").update(`${device}/${token}`).digest();
  const out = Buffer.alloc(300 * 1024);
  for (let i = 0; i < out.length; i += seed.length) seed.copy(out, i);
  out.write(`${device}/${token}`, 0);
  return out;
}

describe("several gateway processes on one ejabberd component domain", () => {
  const teardown = new Teardown();
  let redis: RedisServer;
  let ejabberd: EjabberdServer;
  const gateways: GatewayProcess[] = [];

  before(async () => {
    ({ redis, ejabberd } = await startEjabberdStack(teardown));
    const prefix = `ej-${randomBytes(3).toString("hex")}:`;
    for (const name of ["a", "b", "c"]) {
      gateways.push(
        teardown.stopLater(
          `gateway ${name}`,
          await startGatewayProcess(
            { redis, prosody: ejabberd },
            { REDIS_KEY_PREFIX: prefix, GATEWAY_INSTANCE_ID: `ej-${name}`, LOG_LEVEL: "info" },
          ),
        ),
      );
    }
    teardown.stopLater(
      "fleet",
      await startFleet(ejabberd, DEVICES, (id) => (req, res) => {
        req.resume();
        const url = new URL(req.url ?? "/", "http://device");
        const token = url.searchParams.get("token") ?? "";
        if (url.pathname === "/big") res.end(bigBody(id, token));
        else res.end(`${id}:${token}`);
      }),
    );
  });
  after(() => teardown.run());

  it(`answers ${REQUESTS} requests over ${DEVICES.length} devices, each with its own reply, chunked ones byte-exact`, async () => {
    let next = 0;
    const failures: string[] = [];
    const worker = async () => {
      for (let i = next++; i < REQUESTS; i = next++) {
        const device = DEVICES[i % DEVICES.length] as string;
        const gateway = gateways[i % gateways.length] as GatewayProcess;
        const token = `${i}-${randomBytes(4).toString("hex")}`;
        const big = i % 20 === 0; // 50 chunked replies of 300 KiB
        const res = await fetch(`${gateway.url}/devices/${device}/${big ? "big" : "small"}?token=${token}`);
        const body = Buffer.from(await res.arrayBuffer());
        const expected = big ? bigBody(device, token) : Buffer.from(`${device}:${token}`);
        if (res.status !== 200 || !body.equals(expected))
          failures.push(`#${i} via ${gateway.port}: ${res.status} ${body.subarray(0, 120).toString()}`);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} requests failed`);

    const sum = async (name: string, labels: Record<string, string>) =>
      (await Promise.all(gateways.map((g) => g.metric(name, labels)))).reduce((a, b) => a + b, 0);
    const iq = await sum("gateway_replies_forwarded_total", { kind: "iq" });
    const chunks = await sum("gateway_replies_forwarded_total", { kind: "chunk" });
    const written = await sum("gateway_correlation_records_total", { fate: "written" });
    process.stdout.write(`# forwarded between instances: ${iq} IQ results, ${chunks} chunks; ${written} records written\n`);
    assert.ok(iq > REQUESTS / 10, `only ${iq} replies crossed instances`);
    assert.ok(chunks > 0, "no chunk crossed instances");
    // Held records are written once replies cross: each forwarded reply found its owner's record.
    assert.ok(written >= iq, `${written} records written for ${iq} replies forwarded`);
    const dropped = (await Promise.all(gateways.map((g) => g.metric("gateway_replies_dropped_total")))).reduce((a, b) => a + b, 0);
    assert.equal(dropped, 0, "replies were dropped");
  });
});
