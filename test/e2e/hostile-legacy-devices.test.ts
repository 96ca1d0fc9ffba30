// What the gateway withstands from legacy HTTP devices that answer with broken bytes: bad status lines and
// reason phrases, illegal header fields, conflicting or broken framing, bodies that break off or never end,
// floods of interim responses, oversized heads, bytes that are not HTTP/1.x, silence, closes and resets
// (test/helpers/hostile-http-replies.ts has the catalogue and where each case comes from). Every case runs
// through each way a request reaches the pass-through: `transport: "http"`, `shadow` (the XMPP side
// offline) and `fallback: "http"` (the XMPP device offline). For every one the client gets a catalogue error
// (nothing of the device's answer went out yet) or a visibly cut response (its head did), or the answer when
// it is relayable; the failure is counted by code and reason; nothing is left in flight; the process lives
// on; and a well-behaved legacy device next to it keeps answering byte-exact.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { pollUntil } from "../../local-stack/ports.js";
import { CATALOGUE, type ErrorCode } from "../../gateway/errors.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { HOSTILE_REPLIES, startHostileAndGoodDevices, type HostileReply } from "../helpers/hostile-http-replies.js";
import { send, type RawDevice, type Seen } from "../helpers/raw-http-device.js";
import { startStack, Teardown } from "../helpers/stack.js";

const ADMIN_TOKEN = "hostile-legacy-admin-token";

/** How a request reaches the pass-through, and the registry entry that makes it go that way. */
const ROUTES = {
  http: { transport: "http" },
  shadow: { transport: "shadow" },
  fallback: { transport: "xmpp", fallback: "http" },
} as const;

describe("hostile legacy HTTP devices", { timeout: 120_000 }, () => {
  const teardown = new Teardown();
  let gw: RunningGateway;
  let raw: RawDevice;
  let goodUrl: string;

  const admin = (id: string, body: unknown) =>
    fetch(`${gw.url}/admin/devices/${id}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });

  async function proxyErrors(code: string): Promise<number> {
    return (await gw.gateway.metrics.proxyErrors.get()).values.find((v) => v.labels.code === code)?.value ?? 0;
  }

  async function badReplies(reason: string): Promise<number> {
    return (await gw.gateway.metrics.proxyBadReplies.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
  }

  async function shadowMismatches(): Promise<number> {
    return (await gw.gateway.metrics.shadowComparisons.get()).values.find((v) => v.labels.outcome === "mismatch")?.value ?? 0;
  }

  /** Nothing of a case is left: no exchange, no connection carrying or waiting for a request, no pending IQ. */
  async function assertNothingLeft(): Promise<void> {
    let last = {};
    const ok = await pollUntil(
      "nothing left",
      () => {
        const c = gw.gateway.passThrough.connections();
        last = { exchanges: gw.gateway.passThrough.inFlight(), active: c.active, waiting: c.waiting, pending: gw.gateway.pending.size };
        return Object.values(last).every((n) => n === 0);
      },
      { timeoutMs: 5000 },
    ).catch(() => false);
    assert.ok(ok, `left behind: ${JSON.stringify(last)}`);
  }

  /** The well-behaved device answers through the same gateway, byte for byte. */
  async function assertBystanderServed(): Promise<void> {
    const body = randomBytes(1 + Math.floor(Math.random() * 20_000));
    const seen = await send(`${goodUrl}/echo`, { method: "POST", body, headers: { "content-type": "application/octet-stream" } });
    assert.equal(seen.status, 200);
    assert.ok(seen.complete && seen.body.equals(body), "the well-behaved device's answer is not byte-exact");
  }

  function assertAsExpected(c: HostileReply, seen: Seen): ErrorCode | undefined {
    const e = c.expect;
    const what = JSON.stringify({ ...seen, body: seen.body.subarray(0, 200).toString("latin1") });
    if ("relayed" in e) {
      assert.ok(seen.complete, `expected the answer relayed, got ${what}`);
      assert.equal(seen.status, e.relayed.status, what);
      if (e.relayed.statusMessage !== undefined) assert.equal(seen.statusMessage, e.relayed.statusMessage, what);
      assert.equal(seen.body.toString("latin1"), e.relayed.body, what);
      assert.match(String(seen.headers?.["x-request-id"]), /\S/);
      return undefined;
    }
    const code = "error" in e ? e.error : e.cut;
    const isError =
      seen.complete && seen.status === CATALOGUE[code].status && /^application\/json/.test(String(seen.headers?.["content-type"]));
    if ("error" in e || (e.orError && isError)) {
      assert.ok(isError, `expected ${code}, got ${what}`);
      const parsed = JSON.parse(seen.body.toString()) as { error: { code: string; requestId: string } };
      assert.equal(parsed.error.code, code, what);
      assert.equal(seen.headers?.["x-request-id"], parsed.error.requestId);
      return code;
    }
    assert.equal(seen.complete, false, `expected a cut response, got ${what}`);
    return code;
  }

  before(async () => {
    const stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater(
      "gateway",
      await startGateway(stack, { GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, GATEWAY_REQUEST_TIMEOUT_MS: "10000" }),
    );
    const { raw: hostile, good } = await startHostileAndGoodDevices(teardown);
    raw = hostile;
    for (const [name, entry] of Object.entries(ROUTES))
      assert.ok((await admin(`legacy-${name}`, { ...entry, httpTarget: raw.url })).status < 300);
    assert.ok((await admin("good", { transport: "http", httpTarget: good.url })).status < 300);
    goodUrl = `${gw.url}/devices/good`;
    await assertBystanderServed();
  });
  after(() => teardown.run());

  for (const [routeName] of Object.entries(ROUTES)) {
    describe(`through ${routeName}`, () => {
      HOSTILE_REPLIES.forEach((c, index) => {
        it(c.name, async () => {
          const code = "relayed" in c.expect ? undefined : "error" in c.expect ? c.expect.error : c.expect.cut;
          const reason = "relayed" in c.expect ? undefined : c.expect.reason;
          const before = {
            code: code ? await proxyErrors(code) : 0,
            reason: reason ? await badReplies(reason) : 0,
            mismatches: await shadowMismatches(),
          };
          const headers: Record<string, string> = { "X-Gateway-Timeout": String(c.deadlineMs ?? 5000) };
          const init = c.postBody
            ? { method: "POST", body: randomBytes(c.postBody), headers: { ...headers, "content-type": "application/octet-stream" } }
            : { headers };
          const seen = await send(`${gw.url}/devices/legacy-${routeName}/case/${index}`, init);
          assertAsExpected(c, seen);
          if (code) {
            await pollUntil(`${code} counted`, async () => (await proxyErrors(code)) === before.code + 1, { timeoutMs: 5000 });
            if (reason) assert.equal(await badReplies(reason), before.reason + 1, `reason ${reason}`);
          } else if (routeName === "shadow" && c.postBody === undefined) {
            // A relayed answer in shadow mode is compared with the XMPP side's (offline: a mismatch), after the fact.
            await pollUntil("shadow comparison recorded", async () => (await shadowMismatches()) === before.mismatches + 1, {
              timeoutMs: 5000,
            });
          }
          await assertNothingLeft();
          await assertBystanderServed();
        });
      });
    });
  }

  it("afterwards: no connection to the hostile device is left open", async () => {
    await pollUntil("raw device connections closed", () => raw.openConnections() === 0, { timeoutMs: 5000 });
  });
});
