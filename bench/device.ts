// What every simulated device serves: a small JSON reading, as a legacy thermometer would.
import type { IncomingMessage, ServerResponse } from "node:http";

export const TEMPERATURE_BODY = JSON.stringify({ celsius: 21.5 });

export function temperatureDevice(req: IncomingMessage, res: ServerResponse): void {
  if (req.method === "GET" && req.url === "/TEMPERATURE") {
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(TEMPERATURE_BODY) });
    res.end(TEMPERATURE_BODY);
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found");
}
