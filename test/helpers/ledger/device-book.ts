// The devices of a "nothing lost" run: each answers with the request's token (path `/op/{token}` or
// `/slow/{token}`) in X-Token and in its JSON body, and counts what reached it: per token, and per
// Idempotency-Key for unsafe methods.
import type http from "node:http";
import { UNSAFE, type Method } from "./requests.js";

export interface DeviceBody {
  device: string;
  method: string;
  token: string;
  hit: number;
  actuation?: number;
}

export class DeviceBook {
  readonly hitsByToken = new Map<string, number>();
  /** `${device} ${key}` → actuations that reached the device. */
  readonly actuationsByKey = new Map<string, number>();
  /** Requests the devices are working on now: all, and those with an Idempotency-Key. */
  inFlight = 0;
  keyedInFlight = 0;

  /** @param slowMs how long a `/slow/…` request keeps its device busy, so that requests are in flight at every fault. */
  constructor(private readonly slowMs: number) {}

  handler(device: string) {
    return (req: http.IncomingMessage, res: http.ServerResponse): void => {
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        const method = req.method ?? "";
        const [, kind = "", token = ""] = (req.url ?? "").split("?")[0]?.split("/") ?? [];
        const key = req.headers["idempotency-key"];
        const keyed = typeof key === "string" && UNSAFE.has(method as Method);
        if (kind === "probe") {
          res.setHeader("X-Device", device);
          res.setHeader("X-Token", token);
          res.end(JSON.stringify({ device, method, token, hit: 1 }));
          return;
        }
        const hit = (this.hitsByToken.get(token) ?? 0) + 1;
        this.hitsByToken.set(token, hit);
        let actuation: number | undefined;
        if (keyed) {
          actuation = (this.actuationsByKey.get(`${device} ${key}`) ?? 0) + 1;
          this.actuationsByKey.set(`${device} ${key}`, actuation);
        }
        this.inFlight++;
        if (keyed) this.keyedInFlight++;
        const answer = (): void => {
          this.inFlight--;
          if (keyed) this.keyedInFlight--;
          res.setHeader("X-Device", device);
          res.setHeader("X-Token", token);
          res.setHeader("X-Hit", String(hit));
          if (actuation !== undefined) res.setHeader("X-Actuation", String(actuation));
          if (method === "DELETE") {
            res.statusCode = 204;
            res.end();
            return;
          }
          if (method === "OPTIONS") res.setHeader("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
          res.setHeader("Content-Type", "application/json");
          const body: DeviceBody = { device, method, token, hit, ...(actuation !== undefined ? { actuation } : {}) };
          res.end(JSON.stringify({ ...body, received: Buffer.concat(parts).toString("utf8") }));
        };
        if (kind === "slow") setTimeout(answer, this.slowMs);
        else answer();
      });
    };
  }
}
