import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * A simulated legacy IoT "fire alarm" device: the HTTP API such devices served on their own address
 * before they moved behind NAT. Readings drift a little on every call; the bulb keeps its state.
 */
export function fireAlarm(deviceId: string): (req: IncomingMessage, res: ServerResponse) => void {
  let bulb: "on" | "off" = "off";
  let temperature = 20 + Math.random() * 5;
  let humidity = 40 + Math.random() * 20;
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0]?.replace(/\/+$/, "").toUpperCase() || "/";
    const send = (status: number, body: unknown) => {
      res.statusCode = status;
      res.setHeader("Content-Type", "application/json");
      res.setHeader("Server", `fire-alarm/${deviceId}`);
      res.end(`${JSON.stringify(body)}\n`);
    };
    req.resume();
    if (path === "/TEMPERATURE" && req.method === "GET") {
      temperature += (Math.random() - 0.5) * 0.4;
      send(200, { device: deviceId, temperature: Math.round(temperature * 10) / 10, unit: "C" });
    } else if (path === "/HUMIDITY" && req.method === "GET") {
      humidity += Math.random() - 0.5;
      send(200, { device: deviceId, humidity: Math.round(humidity), unit: "%" });
    } else if ((path === "/BULB/ON" || path === "/BULB/OFF") && (req.method === "POST" || req.method === "GET")) {
      bulb = path.endsWith("ON") ? "on" : "off";
      send(200, { device: deviceId, bulb });
    } else if (path === "/BULB" && req.method === "GET") {
      send(200, { device: deviceId, bulb });
    } else if (path === "/") {
      send(200, { device: deviceId, endpoints: ["GET /TEMPERATURE", "GET /HUMIDITY", "GET /BULB", "POST /BULB/ON", "POST /BULB/OFF"] });
    } else {
      send(404, { device: deviceId, error: "no such endpoint" });
    }
  };
}
