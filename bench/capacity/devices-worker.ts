// Child process holding the simulated devices of --capacity: one device HTTP server and one device agent
// (in this process, as test/helpers/fleet.ts runs them) per id, so the devices' CPU per routed IQ is one
// process's. Started by bench/capacity/steps.ts, once on Prosody and once on ejabberd; "reconnect" logs
// every agent out and in again once a gateway holds the component domain.
import { startFleet, type Fleet } from "../../test/helpers/fleet.js";
import { temperatureDevice } from "../common/device.js";
import { emit, fail, listen, workerConfig } from "../common/worker-io.js";

/** The Prosody handle startFleet takes, wherever the harness declares it. */
type FleetProsody = Parameters<typeof startFleet>[0];

/** The "ready" event: each device's own HTTP server, by id (http://127.0.0.1:PORT). */
export interface DevicesReady {
  pid: number;
  devices: number;
  servers: Record<string, string>;
}

export interface DevicesConfig {
  service: string;
  vhost: string;
  gatewayDomain: string;
  ids: string[];
}

async function main(): Promise<void> {
  const config = workerConfig<DevicesConfig>();
  // startFleet reads only these fields of the Prosody handle. The parent owns Prosody and has created the
  // accounts already, so creating them here is a no-op.
  const view: Pick<FleetProsody, "service" | "vhost" | "components" | "createUsers"> = {
    service: config.service,
    vhost: config.vhost,
    components: [{ domain: config.gatewayDomain, secret: "unused-by-devices" }],
    createUsers: () => Promise.resolve(),
  };
  let fleet: Fleet | undefined;
  let stopping = false;
  listen(
    (command) => {
      if (command === "reconnect" && fleet) void reconnect(fleet);
    },
    () => {
      stopping = true;
      void (fleet?.stop() ?? Promise.resolve()).finally(() => process.exit(0));
    },
  );
  fleet = await startFleet(view, config.ids, () => temperatureDevice);
  if (stopping) return; // told to stop while starting: the stop handler above finishes the job
  const ready: DevicesReady = {
    pid: process.pid,
    devices: fleet.devices.length,
    servers: Object.fromEntries(fleet.devices.map((d) => [d.id, d.server.url])),
  };
  emit("ready", { ...ready });
}

/**
 * Logs every agent out and in again. Agents announce themselves with directed presence when they come
 * online, and presence sent while no component holds the gateway's domain is bounced: after the gateway
 * (re)connects, this makes sure it has heard from every device, as it would after a gateway restart.
 */
async function reconnect(fleet: Fleet): Promise<void> {
  try {
    await Promise.all(fleet.devices.map((d) => d.agent.stop()));
    await Promise.all(fleet.devices.map((d) => d.agent.start()));
    await Promise.all(fleet.devices.map((d) => d.agent.waitOnline(10_000)));
    emit("reconnected");
  } catch (err) {
    fail(err);
  }
}

main().catch(fail);
