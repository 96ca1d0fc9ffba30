// Forward-proxy addressing fed by the devices themselves, against real Redis and Prosody: an agent with a
// legacy address announces it in its presence; the gateway's presence tracker (built here as the composition
// root will build it) records it in the registry, where forward-proxy lookups find the device, for entries an
// operator made with acceptAnnouncedAddress. A second device announcing the same address does not steal it;
// once the owner moves, the address is free again. An agent without such an entry takes no address at all.
// Nothing is ever connected to at the legacy addresses (10.77.x): they are registry keys only.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { DeviceAddressing } from "../../gateway/http/addressing.js";
import { answerConnect } from "../../gateway/http/connect.js";
import { isGatewayError } from "../../gateway/errors.js";
import type { LegacyAddressOutcome } from "../../gateway/presence/legacy-address.js";
import { PresenceStore } from "../../gateway/presence/presence-store.js";
import { PresenceTracker } from "../../gateway/presence/tracker.js";
import { RedisStore } from "../../gateway/redis/client.js";
import { RedisDeviceRegistry } from "../../gateway/registry/redis-registry.js";
import { XmppComponent } from "../../gateway/xmpp/component.js";
import { startFleet, type Fleet } from "../helpers/fleet.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const OWNER_ADDRESS = "10.77.0.17:8080";
const MOVED_ADDRESS = "10.77.0.18:8080";
/** How long a presence may take to reach the tracker and the registry (normally a few milliseconds). */
const OUTCOME_TIMEOUT_MS = 10_000;

describe("legacy addresses announced by device agents", () => {
  const teardown = new Teardown();
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? "silent" });
  let stack: Stack;
  let registry: RedisDeviceRegistry;
  let tracker: PresenceTracker;
  let addressing: DeviceAddressing;
  const outcomes: LegacyAddressOutcome[] = [];
  const waiters: Array<{ match: (o: LegacyAddressOutcome) => boolean; resolve: (o: LegacyAddressOutcome) => void }> = [];

  /** The first outcome from now on that matches (earlier ones do not count), or a timeout error. */
  function nextOutcome(match: (o: LegacyAddressOutcome) => boolean, what: string): Promise<LegacyAddressOutcome> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no ${what} within ${OUTCOME_TIMEOUT_MS} ms; outcomes so far: ${JSON.stringify(outcomes)}`)),
        OUTCOME_TIMEOUT_MS,
      );
      waiters.push({ match, resolve: (o) => (clearTimeout(timer), resolve(o)) });
    });
  }

  const fleets = new Map<string, Fleet>();
  /** One device agent announcing `legacyAddress`, re-announcing every `intervalMs`. */
  async function startDevice(id: string, legacyAddress: string, intervalMs = 60_000): Promise<Fleet> {
    const fleet = await startFleet(stack.prosody, [id], () => (_req, res) => res.end(id), {
      legacyAddress,
      presenceIntervalMs: intervalMs,
    });
    fleets.set(id, fleet);
    teardown.add(`fleet ${id}`, () => fleet.stop());
    return fleet;
  }

  before(async () => {
    teardown.add("outcome waiters", () => void waiters.splice(0));
    stack = teardown.stopLater("stack", await startStack());
    const redis = teardown.stopLater(
      "redis client",
      new RedisStore(
        { url: stack.redis.url, keyPrefix: `t-legacy-${randomBytes(4).toString("hex")}:`, commandTimeoutMs: 2000 },
        { logger },
      ),
    );
    await redis.start();
    registry = new RedisDeviceRegistry(redis);
    const component = stack.prosody.components[0];
    assert.ok(component, "the stack has a gateway component");
    const xmpp = teardown.stopLater(
      "component",
      new XmppComponent({ service: stack.prosody.componentService, domain: component.domain, secret: component.secret }, { logger }),
    );

    // What the composition root (wiring/xmpp.ts) passes the tracker.
    tracker = new PresenceTracker(new PresenceStore(redis, { onlineTtlMs: 180_000, offlineTtlMs: 60_000 }), logger, {
      registry,
      jidTemplate: `{id}@${stack.prosody.vhost}/agent`,
    });
    tracker.onLegacyAddress((o) => {
      outcomes.push(o);
      for (const [i, w] of waiters.entries()) {
        if (w.match(o)) {
          waiters.splice(i, 1);
          w.resolve(o);
          break;
        }
      }
    });
    xmpp.onStanza((stanza) => tracker.handle(stanza));
    addressing = new DeviceAddressing({}, { registry });
    await xmpp.start();
    await xmpp.waitOnline(10_000);
  });
  after(() => teardown.run());

  it("records the address a device announces when its entry accepts announced addresses; forward-proxy lookups then find the device", async () => {
    await registry.put({ id: "leg-owner", transport: "xmpp", acceptAnnouncedAddress: true });
    const created = nextOutcome((o) => o.deviceId === "leg-owner", "outcome for leg-owner");
    await startDevice("leg-owner", OWNER_ADDRESS, 200);
    assert.deepEqual(await created, {
      result: "recorded",
      jid: `leg-owner@${stack.prosody.vhost}/agent`,
      legacyAddress: OWNER_ADDRESS,
      deviceId: "leg-owner",
    });

    assert.equal((await registry.findByLegacyAddress(OWNER_ADDRESS))?.id, "leg-owner");
    assert.equal((await registry.findByLegacyAddress("10.77.0.17:08080"))?.id, "leg-owner", "any spelling");
    const { updatedAt, ...entry } = (await registry.get("leg-owner")) ?? {};
    assert.ok(updatedAt);
    assert.deepEqual(entry, { id: "leg-owner", transport: "xmpp", acceptAnnouncedAddress: true, legacyAddress: OWNER_ADDRESS });

    assert.deepEqual(
      await addressing.address({ method: "GET", url: `http://${OWNER_ADDRESS}/TEMPERATURE/?a=%20b`, headers: { host: OWNER_ADDRESS } }),
      {
        deviceId: "leg-owner",
        resource: "/TEMPERATURE/?a=%20b",
        mode: "proxy",
      },
    );
  });

  it("writes nothing when a device announces the address it already has", async () => {
    const before = (await registry.get("leg-owner"))?.updatedAt;
    // leg-owner announces every 200 ms: wait for the next one.
    const again = await nextOutcome((o) => o.deviceId === "leg-owner", "re-announcement of leg-owner");
    assert.equal(again.result, "unchanged");
    assert.equal((await registry.get("leg-owner"))?.updatedAt, before);
  });

  it("does not let a second device announcing the same address steal it", async () => {
    await registry.put({ id: "leg-thief", transport: "xmpp", acceptAnnouncedAddress: true });
    const refused = nextOutcome((o) => o.deviceId === "leg-thief", "outcome for leg-thief");
    await startDevice("leg-thief", "10.77.0.17:08080", 200); // another spelling of the same address
    assert.deepEqual(await refused, {
      result: "conflict",
      jid: `leg-thief@${stack.prosody.vhost}/agent`,
      legacyAddress: OWNER_ADDRESS,
      deviceId: "leg-thief",
      reason: "owned by device leg-owner",
    });
    assert.equal((await registry.findByLegacyAddress(OWNER_ADDRESS))?.id, "leg-owner");
    assert.equal((await registry.get("leg-thief"))?.legacyAddress, undefined, "the loser's entry got no address");
    // Its periodic announcements keep being refused.
    assert.equal((await nextOutcome((o) => o.deviceId === "leg-thief", "re-announcement of leg-thief")).result, "conflict");
    assert.equal((await registry.findByLegacyAddress(OWNER_ADDRESS))?.id, "leg-owner");
  });

  it("follows a device that moves, and frees its old address for the next claimant", async () => {
    await fleets.get("leg-owner")?.stop();
    const moved = nextOutcome((o) => o.deviceId === "leg-owner" && o.legacyAddress === MOVED_ADDRESS, "outcome for the moved leg-owner");
    const claimed = nextOutcome((o) => o.deviceId === "leg-thief" && o.result !== "conflict", "leg-thief's claim of the freed address");
    await startDevice("leg-owner", MOVED_ADDRESS);
    assert.equal((await moved).result, "recorded");
    assert.equal((await registry.findByLegacyAddress(MOVED_ADDRESS))?.id, "leg-owner");
    // leg-thief's next announcement finds the old address free.
    assert.equal((await claimed).result, "recorded");
    assert.equal((await registry.findByLegacyAddress(OWNER_ADDRESS))?.id, "leg-thief");
  });

  it("lets no agent claim an address an operator did not allow: no entry, or an entry without acceptAnnouncedAddress", async () => {
    const squatter = nextOutcome((o) => o.deviceId === "leg-squatter", "outcome for leg-squatter");
    await startDevice("leg-squatter", "10.77.0.30:8080");
    const unregistered = await squatter;
    assert.equal(unregistered.result, "ignored");
    assert.match(unregistered.reason ?? "", /no registry entry/);
    assert.equal(await registry.findByLegacyAddress("10.77.0.30:8080"), undefined, "an unregistered agent took an address");
    assert.equal(await registry.get("leg-squatter"), undefined, "an agent registered itself");

    await registry.put({ id: "leg-fixed", transport: "xmpp", legacyAddress: "10.77.0.31:8080" });
    const fixed = nextOutcome((o) => o.deviceId === "leg-fixed", "outcome for leg-fixed");
    await startDevice("leg-fixed", "10.77.0.32:8080");
    assert.equal((await fixed).result, "ignored");
    assert.equal(await registry.findByLegacyAddress("10.77.0.32:8080"), undefined, "an agent moved the address an operator set");
    assert.equal((await registry.findByLegacyAddress("10.77.0.31:8080"))?.id, "leg-fixed");
  });

  it("serves forward-proxy requests from a real HTTP client through Node's parser, and refuses the rest", async () => {
    // A stand-in for the gateway's HTTP front (app.ts wires the same pieces): addressing, then a JSON answer.
    const server: Server = createServer((req, res) => {
      addressing.address({ method: req.method ?? "", url: req.url ?? "", headers: req.headers }).then(
        (address) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(address ?? null)),
        (err: unknown) => res.writeHead(isGatewayError(err) ? err.status : 500).end(isGatewayError(err) ? err.code : String(err)),
      );
    });
    server.on("connect", answerConnect());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    teardown.add("proxy front", () => new Promise<void>((resolve) => server.close(() => resolve())));
    const port = (server.address() as AddressInfo).port;

    /** What a client configured with the gateway as its HTTP proxy sends: the absolute URI as the target. */
    const viaProxy = (method: string, target: string, host: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: "127.0.0.1", port, method, path: target, headers: { host }, agent: false });
        req.on("response", (res) => {
          let body = "";
          res
            .setEncoding("utf8")
            .on("data", (d: string) => (body += d))
            .on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        // A CONNECT answer comes as the `connect` event (Node does not emit `response` for it).
        req.on("connect", (res, socket, head) => {
          let body = head.toString("utf8");
          socket
            .setEncoding("utf8")
            .on("data", (d: string) => (body += d))
            .on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("error", reject);
        req.end();
      });

    const ok = await viaProxy("GET", `http://${MOVED_ADDRESS}/BULB/ON?x=%2F`, MOVED_ADDRESS);
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.body), { deviceId: "leg-owner", resource: "/BULB/ON?x=%2F", mode: "proxy" });
    const unknown = await viaProxy("GET", "http://10.77.0.99:8080/TEMPERATURE/", "10.77.0.99:8080");
    assert.deepEqual(unknown, { status: 403, body: "GW_NOT_A_DEVICE" });
    const tunnel = await viaProxy("CONNECT", `${OWNER_ADDRESS.split(":")[0]}:443`, `${OWNER_ADDRESS.split(":")[0]}:443`);
    assert.equal(tunnel.status, 405);
    assert.equal((JSON.parse(tunnel.body) as { error: { code: string } }).error.code, "GW_METHOD_NOT_ALLOWED");
  });
});
