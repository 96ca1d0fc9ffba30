import { createServer, type Server } from "node:http";
import { fireAlarm } from "./fire-alarm.js";
import { EnvReader, loadOrExit, type Env } from "../../lib/env.js";

/**
 * Legacy devices for the container stack (deploy/docker-compose.yml): the demo's simulated fire alarms,
 * each on a port of its own, as each real device had an address of its own before it moved behind an
 * agent. It ships in the image only so that the stack has something to migrate; it is no part of the
 * gateway or the agent.
 *
 *   SIMULATED_DEVICES=dev-17=9017,dev-18=9018   device id = port, comma-separated
 *   SIMULATED_DEVICE_HOST=0.0.0.0               listen address
 */
interface SimulatedDevices {
  host: string;
  devices: Array<{ id: string; port: number }>;
}

function loadDevices(env: Env): SimulatedDevices {
  const r = new EnvReader(env);
  const host = r.string("SIMULATED_DEVICE_HOST", "0.0.0.0");
  const list = r.required("SIMULATED_DEVICES");
  const devices: SimulatedDevices["devices"] = [];
  for (const item of list
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")) {
    const m = /^([A-Za-z0-9._-]{1,64})=(\d{1,5})$/.exec(item);
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65_535) {
      r.problems.push(`SIMULATED_DEVICES: ${JSON.stringify(item)} must be id=port, e.g. dev-17=9017`);
    } else if (devices.some((d) => d.id === m[1] || d.port === port)) {
      r.problems.push(`SIMULATED_DEVICES: ${JSON.stringify(item)} repeats an id or a port`);
    } else {
      devices.push({ id: m[1] as string, port });
    }
  }
  r.done();
  return { host, devices };
}

async function main(): Promise<void> {
  const { host, devices } = loadOrExit(loadDevices);
  const servers: Server[] = [];
  for (const { id, port } of devices) {
    const server = createServer(fireAlarm(id));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, resolve);
    });
    servers.push(server);
    process.stdout.write(`${JSON.stringify({ event: "listening", device: id, host, port })}\n`);
  }
  const stop = () => {
    for (const s of servers) s.closeAllConnections();
    void Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))).then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
