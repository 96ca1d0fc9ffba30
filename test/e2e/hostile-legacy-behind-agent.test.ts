// What the device agent withstands from the legacy device it serves: every broken reply of the
// hostile-legacy-devices catalogue (test/helpers/hostile-http-replies.ts), played by a raw TCP device behind a
// real agent, through a real Prosody and gateway. The agent carries a device's answer inside XML on its own
// XMPP stream, where a control character (even escaped, XML 1.0 §2.2) ends the whole stream; so for every
// case the client gets the device's answer when it can be carried faithfully, else the agent's own 502/504
// with `X-Device-Agent-Error`; the agent's XMPP sessions never drop or reconnect; and a well-behaved device
// served by the same agent process (same keep-alive HTTP agent) answers byte-exact right after. Each XMPP
// identity has a stream of its own, so before the agent checked replies a NUL in a reason phrase cost the
// hostile device its session (`not-well-formed`, a reconnect) and the client its answer (504 at the
// gateway's deadline). In process first (all cases), then the cases whose bytes reach the XML through a real
// agent process serving a fleet file of two devices.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { Agent } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { DeviceAgent } from "../../adapters/device-agent/agent.js";
import { pollUntil } from "../../local-stack/ports.js";
import { spawnChild, type ChildHandle } from "../../local-stack/process.js";
import { agentOptions } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { HOSTILE_REPLIES, reply, type HostileReply } from "../helpers/hostile-http-replies.js";
import { startDeviceServer } from "../helpers/http-device.js";
import { send, startRawDevice, type Seen } from "../helpers/raw-http-device.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

/** The agent's own local call deadline: the cases that never end end at it, well before the gateway's. */
const LOCAL_TIMEOUT_MS = 1000;
/** The agent's body bound, small so that a flood reaches it quickly. */
const MAX_BODY_BYTES = 256 * 1024;

type AgentError = "local-bad-reply" | "local-unreachable" | "local-timeout" | "local-reply-too-large";
type AgentExpected =
  { relayed: { status: number; statusMessage?: string; body: string; headers?: Record<string, string> } } | { agentError: AgentError };

interface AgentCase {
  name: string;
  steps: HostileReply["steps"];
  expect: AgentExpected;
  postBody?: number;
}

/** A pass-through case, as the agent must answer it: it reads the whole reply before it says anything. */
function behindAgent(c: HostileReply): AgentCase {
  const e = c.expect;
  let expect: AgentExpected;
  if ("relayed" in e) {
    expect = { relayed: e.relayed };
  } else {
    const code = "error" in e ? e.error : e.cut;
    expect = {
      agentError:
        code === "GW_UPSTREAM_TIMEOUT" ? "local-timeout" : code === "GW_UPSTREAM_UNREACHABLE" ? "local-unreachable" : "local-bad-reply",
    };
  }
  return { name: c.name, steps: c.steps, expect, ...(c.postBody ? { postBody: c.postBody } : {}) };
}

/** What only the agent's path has to carry: obs-text into XML and back, and its own body bound. */
const AGENT_ONLY: AgentCase[] = [
  {
    name: "obs-text (bytes 0x80-0xFF, not UTF-8) in header values: relayed as sent",
    steps: [reply("HTTP/1.1 200 OK", ["X-Latin: caf\xe9 \xff\x80", "X-Bytes: \xc3(", "Content-Length: 2"])],
    expect: { relayed: { status: 200, statusMessage: "OK", body: "ok", headers: { "x-latin": "caf\xe9 \xff\x80", "x-bytes": "\xc3(" } } },
  },
  {
    name: "NUL in a header value",
    steps: [reply("HTTP/1.1 200 OK", ["X-A: a\x00b", "Content-Length: 2"])],
    expect: { agentError: "local-bad-reply" },
  },
  {
    name: "vertical tab and form feed in a header value",
    steps: [reply("HTTP/1.1 200 OK", ["X-A: a\x0b\x0cb", "Content-Length: 2"])],
    expect: { agentError: "local-bad-reply" },
  },
  { name: "reason phrase with a vertical tab", steps: [reply("HTTP/1.1 200 O\x0bK")], expect: { agentError: "local-bad-reply" } },
  {
    name: "reason phrase with C1 controls and obs-text: relayed as sent",
    steps: [reply("HTTP/1.1 200 \x85\x9f\xa0ok")],
    expect: { relayed: { status: 200, statusMessage: "\x85\x9f\xa0ok", body: "ok" } },
  },
  // The reason phrase travels in an XML attribute, where a tab is normalized to a space (XML 1.0 §3.3.3); the
  // phrase is advisory (RFC 9110 §15), so the agent carries it as that rather than refusing the reply.
  {
    name: "reason phrase with a tab: relayed with a space",
    steps: [reply("HTTP/1.1 200 O\tK")],
    expect: { relayed: { status: 200, statusMessage: "O K", body: "ok" } },
  },
  {
    name: "header value with a tab inside",
    steps: [reply("HTTP/1.1 200 OK", ["X-A: a\tb", "Content-Length: 2"])],
    expect: { relayed: { status: 200, body: "ok", headers: { "x-a": "a\tb" } } },
  },
  {
    name: "a body over the agent's limit",
    steps: [reply("HTTP/1.1 200 OK", [`Content-Length: ${MAX_BODY_BYTES + 1}`], "y".repeat(MAX_BODY_BYTES + 1))],
    expect: { agentError: "local-reply-too-large" },
  },
  {
    name: "a close-delimited body that never ends",
    steps: [reply("HTTP/1.1 200 OK", [], ""), { trickle: Buffer.alloc(16 * 1024, 0x7a), everyMs: 5 }],
    expect: { agentError: "local-reply-too-large" },
  },
  {
    name: "101 with an upgrade nobody asked for, then bytes",
    steps: [reply("HTTP/1.1 101 Switching Protocols", ["Upgrade: h2c", "Connection: Upgrade"], "\x00\x01junk")],
    expect: { agentError: "local-bad-reply" },
  },
];

const CASES: AgentCase[] = [...HOSTILE_REPLIES.map(behindAgent), ...AGENT_ONLY];

describe("hostile legacy HTTP devices behind the device agent", { timeout: 180_000 }, () => {
  const teardown = new Teardown();
  let gw: RunningGateway;
  let stack: Stack;
  let rawUrl: string;
  let goodUrl: string;
  /** Every log line the agents wrote, by device JID. */
  const events = new Map<string, Array<{ event: unknown; fields: Record<string, unknown> }>>();
  let hostile: DeviceAgent;
  let bystander: DeviceAgent;
  /** A device whose local call throws inside the agent (node's http.request throws on what it will not send). */
  let thrower: DeviceAgent;

  const log = {
    info: (fields: Record<string, unknown>) => record(fields),
    warn: (fields: Record<string, unknown>) => record(fields),
  };
  function record(fields: Record<string, unknown>): void {
    const device = String(fields.device);
    const list = events.get(device) ?? [];
    list.push({ event: fields.event, fields });
    events.set(device, list);
  }
  /** Connection events of a device: `online`, `offline`, `retry`, `error`, `replaced`. */
  function connectionEvents(agent: DeviceAgent): unknown[] {
    return (events.get(agent.jid) ?? [])
      .map((e) => e.event)
      .filter((e) => ["online", "offline", "retry", "error", "replaced"].includes(String(e)));
  }

  /** Both XMPP sessions are the ones they started with: online once, never dropped, never retried. */
  function assertSessionsUnbroken(): void {
    for (const agent of [hostile, bystander]) {
      assert.deepEqual(
        connectionEvents(agent),
        ["online"],
        `${agent.jid}'s XMPP session was interrupted: ${JSON.stringify(events.get(agent.jid))}`,
      );
      assert.ok(agent.online, `${agent.jid} is offline`);
    }
  }

  /** The well-behaved device on the same agent process answers byte for byte (inline or chunked). */
  async function assertBystanderServed(): Promise<void> {
    const body = randomBytes(1 + Math.floor(Math.random() * 100_000));
    const seen = await send(`${gw.url}/devices/bystander/echo`, {
      method: "POST",
      body,
      headers: { "content-type": "application/octet-stream" },
    });
    assert.equal(seen.status, 200, JSON.stringify({ ...seen, body: seen.body.subarray(0, 200).toString() }));
    assert.ok(seen.complete && seen.body.equals(body), "the well-behaved device's answer is not byte-exact");
  }

  /** And the hostile device's own session still carries requests. */
  async function assertHostileStillServed(): Promise<void> {
    const seen = await send(`${gw.url}/devices/hostile/ok`);
    assert.equal(seen.status, 200, JSON.stringify({ ...seen, body: seen.body.toString() }));
    assert.equal(seen.body.toString(), "ok");
  }

  function assertAsExpected(c: AgentCase, seen: Seen): void {
    const what = JSON.stringify({ ...seen, body: seen.body.subarray(0, 300).toString("latin1") });
    assert.ok(seen.complete, `expected a complete answer, got ${what}`);
    const e = c.expect;
    if ("relayed" in e) {
      assert.equal(seen.status, e.relayed.status, what);
      if (e.relayed.statusMessage !== undefined) assert.equal(seen.statusMessage, e.relayed.statusMessage, what);
      assert.equal(seen.body.toString("latin1"), e.relayed.body, what);
      for (const [name, value] of Object.entries(e.relayed.headers ?? {})) assert.equal(seen.headers?.[name], value, what);
      assert.equal(seen.headers?.["x-device-agent-error"], undefined, what);
      return;
    }
    assert.equal(seen.status, e.agentError === "local-timeout" ? 504 : 502, what);
    assert.equal(seen.headers?.["x-device-agent-error"], e.agentError, what);
    assert.match(String(seen.headers?.["content-type"]), /^application\/json/, what);
    const parsed = JSON.parse(seen.body.toString()) as { error: { code: string; message: string } };
    assert.equal(parsed.error.code, e.agentError, what);
    assert.match(parsed.error.message, /\S/);
  }

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater("gateway", await startGateway(stack, { GATEWAY_REQUEST_TIMEOUT_MS: "15000" }));
    const raw = teardown.stopLater(
      "raw device",
      await startRawDevice((path) => {
        if (path === "/ok") return [reply("HTTP/1.1 200 OK", ["Content-Length: 2", "Connection: close"])];
        return CASES[Number(path.split("/")[2])]?.steps ?? [{ close: true }];
      }),
    );
    const good = teardown.stopLater(
      "good device",
      await startDeviceServer((req, res) => {
        res.setHeader("Content-Type", "application/octet-stream");
        req.pipe(res);
      }),
    );
    rawUrl = raw.url;
    goodUrl = good.url;
    await stack.prosody.createUsers(["hostile", "bystander", "thrower"].map((id) => ({ username: id, password: `pw-${id}` })));
    // One process, one keep-alive HTTP agent, many device identities: as adapters/device-agent/main.ts runs a fleet.
    const httpAgent = new Agent({ keepAlive: true });
    teardown.stopLater("http agent", { stop: () => httpAgent.destroy() });
    const overrides = { localTimeoutMs: LOCAL_TIMEOUT_MS, maxBodyBytes: MAX_BODY_BYTES };
    hostile = new DeviceAgent(agentOptions(stack.prosody, "hostile", raw.url, overrides), { log, httpAgent });
    bystander = new DeviceAgent(agentOptions(stack.prosody, "bystander", good.url, overrides), { log, httpAgent });
    const throwing = new Agent();
    (throwing as unknown as { addRequest: () => void }).addRequest = () => {
      throw new Error("this HTTP agent refuses every request");
    };
    thrower = new DeviceAgent(agentOptions(stack.prosody, "thrower", good.url, overrides), { log, httpAgent: throwing });
    for (const agent of [hostile, bystander, thrower]) teardown.stopLater(agent.jid, agent);
    await Promise.all([hostile.start(), bystander.start(), thrower.start()]);
    await Promise.all([hostile.waitOnline(10_000), bystander.waitOnline(10_000), thrower.waitOnline(10_000)]);
    // The gateway knows a device from its presence.
    await pollUntil(
      "both devices reachable",
      async () =>
        (await send(`${gw.url}/devices/bystander/echo`, { method: "POST", body: Buffer.from("x") })).status === 200 &&
        (await send(`${gw.url}/devices/hostile/ok`)).status === 200 &&
        (await send(`${gw.url}/devices/thrower/x`)).status !== 503,
      { timeoutMs: 10_000 },
    );
    assertSessionsUnbroken();
  });
  after(() => teardown.run());

  it("a local call that throws inside the agent is the agent's 502, not an internal error or silence", async () => {
    const seen = await send(`${gw.url}/devices/thrower/x`, { headers: { "X-Gateway-Timeout": "10000" } });
    assert.ok(seen.complete);
    assert.equal(seen.status, 502, seen.body.toString());
    assert.equal(seen.headers?.["x-device-agent-error"], "local-unreachable", seen.body.toString());
    assert.match(seen.body.toString(), /refuses every request/);
    assert.deepEqual(connectionEvents(thrower), ["online"], JSON.stringify(events.get(thrower.jid)));
    assert.ok(thrower.online);
    await assertBystanderServed();
  });

  CASES.forEach((c, index) => {
    it(c.name, async () => {
      const headers: Record<string, string> = { "X-Gateway-Timeout": "10000" };
      const init = c.postBody
        ? { method: "POST", body: randomBytes(c.postBody), headers: { ...headers, "content-type": "application/octet-stream" } }
        : { headers };
      const seen = await send(`${gw.url}/devices/hostile/case/${index}`, init);
      assertAsExpected(c, seen);
      assertSessionsUnbroken();
      await assertBystanderServed();
      await assertHostileStillServed();
      assertSessionsUnbroken();
    });
  });
  // The same broken replies through the agent as operators run it: one process (adapters/device-agent/main.ts)
  // serving a fleet file of two devices. Only the cases whose bytes reach the XML: the rest are above.
  describe("through a real agent process serving two devices", () => {
    const XML_CASES = CASES.map((c, index) => ({ c, index })).filter(({ c }) =>
      /reason phrase|header value|101|version 2\.0|Transfer-Encoding|obs-text/.test(c.name),
    );
    let child: ChildHandle;
    let dir: string;

    /** Each device's XMPP session came up once and never went down: one `agent online` each, nothing else. */
    function assertProcessUnbroken(): void {
      assert.equal(child.hasExited(), false, `the agent process exited: ${child.output()}`);
      const lines = child
        .output()
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { event?: string; device?: string });
      const connection = lines.filter((l) => ["online", "offline", "retry", "error", "replaced"].includes(String(l.event)));
      assert.deepEqual(
        connection.map((l) => `${l.event} ${l.device}`).sort(),
        ["online fleet-bystander@localhost/agent", "online fleet-hostile@localhost/agent"],
        child.output(),
      );
    }

    before(async () => {
      await stack.prosody.createUsers(["fleet-hostile", "fleet-bystander"].map((id) => ({ username: id, password: `pw-${id}` })));
      dir = await mkdtemp(join(tmpdir(), "agent-fleet-"));
      const fleetFile = join(dir, "fleet.json");
      await writeFile(
        fleetFile,
        JSON.stringify([
          { username: "fleet-hostile", password: "pw-fleet-hostile", localUrl: rawUrl },
          { username: "fleet-bystander", password: "pw-fleet-bystander", localUrl: goodUrl },
        ]),
      );
      child = teardown.stopLater(
        "agent process",
        await spawnChild(process.execPath, ["--import", "tsx", "adapters/device-agent/main.ts"], {
          name: "agent-fleet",
          env: {
            AGENT_SERVICE: stack.prosody.service,
            AGENT_DOMAIN: stack.prosody.vhost,
            AGENT_GATEWAY_JID: "gateway.localhost",
            AGENT_SASL_MECHANISM: "PLAIN",
            AGENT_FLEET_FILE: fleetFile,
            AGENT_LOCAL_TIMEOUT_MS: String(LOCAL_TIMEOUT_MS),
            LOG_LEVEL: "info",
          },
        }),
      );
      await pollUntil(
        "fleet reachable",
        async () =>
          (await send(`${gw.url}/devices/fleet-bystander/echo`, { method: "POST", body: Buffer.from("x") })).status === 200 &&
          (await send(`${gw.url}/devices/fleet-hostile/ok`)).status === 200,
        { timeoutMs: 15_000 },
      );
      assertProcessUnbroken();
    });
    after(() => rm(dir, { recursive: true, force: true }));

    for (const { c, index } of XML_CASES) {
      it(c.name, async () => {
        const seen = await send(`${gw.url}/devices/fleet-hostile/case/${index}`, { headers: { "X-Gateway-Timeout": "10000" } });
        assertAsExpected(c, seen);
        const body = randomBytes(1 + Math.floor(Math.random() * 100_000));
        const echoed = await send(`${gw.url}/devices/fleet-bystander/echo`, {
          method: "POST",
          body,
          headers: { "content-type": "application/octet-stream" },
        });
        assert.ok(echoed.status === 200 && echoed.complete && echoed.body.equals(body), "the bystander's answer is not byte-exact");
        assert.equal((await send(`${gw.url}/devices/fleet-hostile/ok`)).status, 200);
        assertProcessUnbroken();
      });
    }
  });
});
