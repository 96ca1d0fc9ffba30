// Child process holding the device side of the default run's HTTP: every device's own HTTP server, the same
// for every path, so the devices do identical work on all of them: (a) and (b) reach them through the device
// agents (one agent process, bench/ratios/fleet.ts), (c) and (d) directly over HTTP, at the URLs this
// worker reports in its "ready" event. Started by bench/ratios/fleet.ts.
//
// Each device listens on a port of its own, so each is an origin of its own, as real devices are: the
// gateway's pass-through and the bare proxy both pool connections per origin, and at 16 per origin a single
// shared origin would queue 64 clients behind 16 connections. But one http.Server parses and answers for
// all of them (each listener hands its connections to it): 5,000 devices are 5,000 listening sockets, not
// 5,000 servers' worth of objects. It counts the connections the devices accept ("count" command): with
// thousands of devices asked in turn, a device may be asked again only after its idle connections were
// closed, and each request then opens one.
import http from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { temperatureDevice } from "../common/device.js";
import { emit, fail, listen, workerConfig } from "../common/worker-io.js";

/** The "ready" event: each device's own HTTP server, by id (http://127.0.0.1:PORT). */
export interface DevicesReady {
  pid: number;
  servers: Record<string, string>;
}

export interface DevicesConfig {
  ids: string[];
}

/** The "count" event, answering the "count" command: connections accepted since the start, all devices. */
export interface DevicesCount {
  accepted: number;
}

/** Pending connections the kernel queues per listener: a pool opening its connections sends them at once. */
const BACKLOG = 1024;

async function listenOn(listener: net.Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen({ port: 0, host: "127.0.0.1", backlog: BACKLOG }, () => {
      listener.off("error", reject);
      resolve();
    });
  });
  return (listener.address() as AddressInfo).port;
}

async function main(): Promise<void> {
  const config = workerConfig<DevicesConfig>();
  const server = http.createServer(temperatureDevice);
  const listeners: net.Server[] = [];
  let stopping = false;
  let accepted = 0;
  listen(
    (command) => {
      if (command === "count") emit("count", { accepted });
    },
    () => {
      stopping = true;
      for (const l of listeners) l.close();
      server.closeAllConnections();
      process.exit(0);
    },
  );
  const servers: Record<string, string> = {};
  for (const id of config.ids) {
    // Node's documented way to give a server connections it did not accept itself.
    const listener = net.createServer((socket) => {
      accepted++;
      server.emit("connection", socket);
    });
    listeners.push(listener);
    servers[id] = `http://127.0.0.1:${await listenOn(listener)}`;
    if (stopping) return;
  }
  const ready: DevicesReady = { pid: process.pid, servers };
  emit("ready", { ...ready });
}

main().catch(fail);
