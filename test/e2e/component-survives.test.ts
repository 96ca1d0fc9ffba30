// The gateway's side of the same guarantee as agent-survives.test.ts: its XEP-0114 component connection, kept
// up by the same supervisor (lib/xmpp/supervisor.ts), goes through a component port that misbehaves at each
// step (test/helpers/hostile-xmpp-server.ts), and the gateway process is afterwards the same process, with no
// error having reached its process level (gateway_unexpected_errors_total stays 0: process-guard.ts never
// had to act), and online again once the server behaves.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { startRedis } from "../../local-stack/redis.js";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.js";
import { caseName, HARMS, startHostileXmppServer, type HostileCase, type HostileXmppServer } from "../helpers/hostile-xmpp-server.js";
import { Teardown } from "../helpers/stack.js";

const COMPONENT = { domain: "gateway.localhost", secret: "test-secret" };

/**
 * The first attempt meets a reset before the stream opens (the library's start() then leaves its wait for
 * online unobserved); every harm once the component is online (each online resets the backoff, so the run
 * stays short); then the ones that need an open stream before the handshake.
 */
const CASES: HostileCase[] = [
  { step: "connect", harm: "reset" },
  ...HARMS.map((harm) => ({ step: "online" as const, harm })),
  { step: "header", harm: "two-xml-errors" },
  { step: "header", harm: "not-well-formed" },
  { step: "sasl", harm: "stream-error" },
];

describe("gateway process survives every failure of its component connection", { timeout: 90_000 }, () => {
  const teardown = new Teardown();
  let hostile: HostileXmppServer;
  let gw: GatewayProcess;

  before(async () => {
    const redis = teardown.stopLater("redis", await startRedis());
    hostile = teardown.stopLater(
      "hostile component port",
      await startHostileXmppServer({ domain: COMPONENT.domain, cases: CASES, flavour: "component" }),
    );
    gw = teardown.stopLater(
      "gateway",
      await startGatewayProcess(
        { redis, prosody: { components: [COMPONENT], componentService: hostile.service, vhost: "localhost" } },
        { LOG_LEVEL: "info" }, // its "started" line tells the port it got (port 0)
        { waitFor: "listening" }, // not ready while XMPP is down
      ),
    );
  });
  after(() => teardown.run());

  it("each harm, then online again once the server behaves, with nothing reaching the process level", async () => {
    const pid = gw.child.pid;
    const pending = () => CASES.filter((c) => !hostile.done.get(caseName(c)));
    await pollUntil("every case carried out (or the gateway gone)", () => gw.child.hasExited() || pending().length === 0, {
      timeoutMs: 60_000,
    }).catch((err: unknown) => {
      throw new Error(
        `${(err as Error).message}\nnot carried out: ${pending().map(caseName).join(", ")}\n${gw.child.output().slice(-3_000)}`,
        { cause: err },
      );
    });
    assert.equal(gw.child.hasExited(), false, `the gateway process died:\n${gw.child.output().slice(-6_000)}`);
    // The connection held after the stream error is reset once the component comes back (the calm server
    // lets it): by then the library has let that socket go.
    hostile.calm();
    await pollUntil(
      "the component online again (or the gateway gone)",
      async () => {
        if (gw.child.hasExited()) return true;
        return hostile.holding === 0 && (await gw.metric("gateway_xmpp_connected")) === 1;
      },
      { timeoutMs: 30_000 },
    );
    assert.equal(gw.child.hasExited(), false, `the gateway process died:\n${gw.child.output().slice(-6_000)}`);
    assert.equal(gw.child.pid, pid);
    assert.equal(await gw.metric("gateway_unexpected_errors_total", { kind: "uncaught_exception" }), 0, gw.child.output().slice(-6_000));
    assert.equal(await gw.metric("gateway_unexpected_errors_total", { kind: "unhandled_rejection" }), 0, gw.child.output().slice(-6_000));
  });
});
