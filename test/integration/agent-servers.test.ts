// The device agent over several servers (adapters/device-agent/servers.ts) against a real Prosody: a list
// whose first server refuses, and xmpp-srv:// entries whose SRV records (from an injected lookup) name a dead
// server first, the live one after; a round that fails entirely resolves SRV again.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DeviceAgent, type AgentOptions } from "../../adapters/device-agent/agent.js";
import type { SrvRecord } from "../../adapters/device-agent/servers.js";
import { freePort } from "../../local-stack/ports.js";
import { startProsody, type ProsodyServer } from "../../local-stack/prosody.js";
import { agentOptions } from "../helpers/fleet.js";

interface Events {
  online: string[];
  retries: Array<Record<string, unknown>>;
}

describe("device agent: several servers", () => {
  let prosody: ProsodyServer;
  let deadPort: number; // nothing listens there: every attempt is refused at once
  const agents: DeviceAgent[] = [];

  before(async () => {
    prosody = await startProsody();
    await prosody.createUsers([{ username: "multi", password: "pw-multi" }]);
    deadPort = await freePort();
  });
  after(async () => {
    await Promise.allSettled(agents.map((a) => a.stop()));
    await prosody?.stop();
  });

  function start(overrides: Partial<AgentOptions>): { agent: DeviceAgent; events: Events } {
    const events: Events = { online: [], retries: [] };
    const log = {
      info: (fields: Record<string, unknown>) => void (fields.event === "online" && events.online.push(String(fields.server))),
      warn: (fields: Record<string, unknown>) => void (fields.event === "retry" && events.retries.push(fields)),
    };
    const agent = new DeviceAgent(
      agentOptions(prosody, "multi", "http://127.0.0.1:1", { backoff: { initialMs: 20, maxMs: 100 }, ...overrides }),
      {
        log,
      },
    );
    agents.push(agent);
    return { agent, events };
  }

  it("logs in on the second server of a list when the first refuses", async () => {
    const { agent, events } = start({ service: `xmpp://127.0.0.1:${deadPort},${prosody.service}` });
    await agent.start();
    await agent.waitOnline(15_000);
    assert.deepEqual(events.online, [prosody.service]);
    assert.equal(events.retries[0]?.next, prosody.service, "the retry after the refusal goes to the next server");
    await agent.stop();
  });

  it("follows xmpp-srv:// records in priority order, and resolves them again after a failed round", async () => {
    const live = Number(new URL(prosody.service).port);
    const asked: string[] = [];
    // First answer: the dead server only (the round fails); from then on, the dead one and the live one.
    const srvLookup = (name: string): Promise<SrvRecord[]> => {
      asked.push(name);
      const dead = { name: "127.0.0.1", port: deadPort, priority: 0, weight: 0 };
      if (asked.length === 1) return Promise.resolve([dead]);
      return Promise.resolve([{ name: "127.0.0.1.", port: live, priority: 10, weight: 5 }, dead]);
    };
    const { agent, events } = start({ service: "xmpp-srv://cluster.example", tls: { mode: "off" }, srvLookup });
    await agent.start();
    await agent.waitOnline(15_000);
    assert.deepEqual(events.online, [`xmpp://127.0.0.1:${live}`]);
    // TLS off: only the STARTTLS records were asked for, once per round.
    assert.deepEqual(asked, ["_xmpp-client._tcp.cluster.example", "_xmpp-client._tcp.cluster.example"]);
    // Round 1 failed: resolve again; round 2 tried the dead server (priority 0), then the live one (priority 10).
    assert.deepEqual(
      events.retries.map((r) => (r.resolveAgain === true ? "resolve again" : r.next)),
      ["resolve again", `xmpp://127.0.0.1:${live}`],
    );
  });
});
