// HAProxy in front of the two gateway instances of a "nothing lost" run, and the client's way to it.
import http from "node:http";
import { startHaproxy, type HaproxyServer } from "../../../local-stack/haproxy.js";
import { pollUntil } from "../../../local-stack/ports.js";
import type { Teardown } from "../stack.js";
import type { Target } from "./client.js";
import type { GatewayInstance } from "./gateway-instance.js";

/**
 * Starts HAProxy (health-checking /readyz) in front of `instances`, stopped by `teardown`, and waits until its
 * checks see each instance as `expected` says (it starts with every server half UP).
 */
export async function startLoadBalancer(
  teardown: Teardown,
  instances: readonly GatewayInstance[],
  expected: Readonly<Record<string, "UP" | "DOWN">>,
): Promise<{ lb: HaproxyServer; target: Target }> {
  const lb = teardown.stopLater("haproxy", await startHaproxy(instances.map((g) => ({ name: g.name, port: g.port }))));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 12 });
  teardown.add("client sockets", () => agent.destroy());
  const want = Object.entries(expected)
    .map(([name, state]) => `${name} ${state}`)
    .join(", ");
  await pollUntil(
    `${want} in HAProxy`,
    async () => {
      const states = await lb.serverStates();
      return Object.entries(expected).every(([name, state]) => states[name] === state);
    },
    { timeoutMs: 30_000 },
  );
  return { lb, target: { name: "lb", port: lb.port, agent } };
}
