// A device's own HTTP server for the in-flight limit tests: how many requests it holds at once, the most
// ever, what reached it, and `/hold…` requests held until the test releases them.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { DeviceRecord } from "../../gateway/registry/device.js";
import { startFleet } from "./fleet.js";
import { registryChangeSeen, type RunningGateway } from "./gateway.js";
import { startDeviceServer } from "./http-device.js";
import type { Stack, Teardown } from "./stack.js";

/**
 * A device's own HTTP server: counts the requests it holds at once (the most ever, too). `/hold…` waits
 * for the test; anything else is answered after a few milliseconds (a device that takes a little time).
 */
export function countingDevice(id: string) {
  let now = 0;
  let most = 0;
  const held: ServerResponse[] = [];
  const seen: string[] = [];
  let actuations = 0;
  let releaseAtOnce = false;
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => {
      seen.push(req.url ?? "");
      most = Math.max(most, ++now);
      res.once("close", () => now--);
      if (req.method === "POST") res.end(`${id} actuation ${++actuations}`);
      else if (req.url?.startsWith("/hold") && !releaseAtOnce) held.push(res);
      else setTimeout(() => res.end(`${id} answers ${req.url}`), 3);
    });
  };
  return {
    handler,
    seen,
    held,
    get most() {
      return most;
    },
    get now() {
      return now;
    },
    get actuations() {
      return actuations;
    },
    releaseAll() {
      for (const res of held.splice(0)) res.end(`released ${id}`);
    },
    /** From now on `/hold` is answered at once; those held are released. */
    openUp() {
      releaseAtOnce = true;
      this.releaseAll();
    },
    reset() {
      most = now;
      seen.length = 0;
      releaseAtOnce = false;
    },
  };
}

export type CountingDevice = ReturnType<typeof countingDevice>;

/** Where a counting device is registered: the harness's Prosody, the instance that writes its entry, the others that must see it. */
export interface CountingDeviceSite {
  prosody: Stack["prosody"];
  teardown: Teardown;
  writer: RunningGateway;
  readers: readonly RunningGateway[];
}

/**
 * A counting device by that id on the transport (XMPP through a device agent, or the pass-through to its own
 * server), registered with these settings, its entry seen by every instance; stopped by the site's teardown.
 */
export async function startCountingDevice(
  site: CountingDeviceSite,
  id: string,
  transport: "xmpp" | "http",
  settings: Partial<DeviceRecord> = {},
): Promise<CountingDevice> {
  const d = countingDevice(id);
  if (transport === "xmpp") {
    site.teardown.stopLater(`fleet ${id}`, await startFleet(site.prosody, [id], () => d.handler));
    await site.writer.gateway.registry.put({ id, transport: "xmpp", ...settings });
  } else {
    const server = site.teardown.stopLater(`device ${id}`, await startDeviceServer(d.handler));
    await site.writer.gateway.registry.put({ id, transport: "http", httpTarget: server.url, ...settings });
  }
  await registryChangeSeen(site.readers, id);
  return d;
}
