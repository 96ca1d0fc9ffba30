// A legacy device HTTP server that reports what it received, so tests can compare both ends of the gateway.
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

export interface EchoReport {
  device: string;
  method: string;
  url: string;
  rawHeaders: string[];
  bodyLength: number;
  bodySha256: string;
}

export function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

function readAll(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => resolve(Buffer.concat(parts)));
    req.on("error", reject);
  });
}

/**
 * Routes: `/echo...` answers with the request body and content type; `/status/N` answers N with a text body;
 * `/multi` answers repeated headers; anything else answers an EchoReport as JSON.
 */
export function echoDevice(device: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    void readAll(req).then((body) => {
      const url = req.url ?? "";
      res.setHeader("X-Device", device);
      if (url.startsWith("/echo")) {
        res.setHeader("Content-Type", req.headers["content-type"] ?? "application/octet-stream");
        res.setHeader("X-Body-Sha256", sha256(body));
        res.end(body);
        return;
      }
      const status = /^\/status\/(\d{3})/.exec(url);
      if (status) {
        res.statusCode = Number(status[1]);
        res.setHeader("Content-Type", "text/plain; charset=utf-8");
        res.end(`device ${device} says ${status[1]}`);
        return;
      }
      if (url.startsWith("/multi")) {
        res.appendHeader("Set-Cookie", "a=1; Path=/");
        res.appendHeader("X-Multi", "first");
        res.appendHeader("Set-Cookie", "b=2; Path=/");
        res.appendHeader("X-Multi", "second");
        res.end("multi");
        return;
      }
      const report: EchoReport = {
        device,
        method: req.method ?? "",
        url,
        rawHeaders: req.rawHeaders,
        bodyLength: body.length,
        bodySha256: sha256(body),
      };
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(report));
    });
  };
}
