// What every simulated device serves: a small JSON reading, as a legacy thermometer would.
import type { IncomingMessage, ServerResponse } from "node:http";

export const TEMPERATURE_BODY = JSON.stringify({ celsius: 21.5 });

/** GET /TEMPERATURE reads it; POST /TEMPERATURE (a set point, as --capacity sends with an Idempotency-Key) answers it too. */
export function temperatureDevice(req: IncomingMessage, res: ServerResponse): void {
  if ((req.method === "GET" || req.method === "POST") && req.url === "/TEMPERATURE") {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(TEMPERATURE_BODY) });
    res.end(TEMPERATURE_BODY);
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found");
}

/**
 * What a device of the soak and fleet runs answers on `/TEMPERATURE`: a reading that names the device, so
 * that the client can tell it got the answer of the device it asked, not just any answer.
 */
export function readingBody(deviceId: string): string {
  return JSON.stringify({ device: deviceId, celsius: 21.5 });
}
