// Registers devices through the gateway's admin API (README "Migrating a fleet", step 1), as an operator
// would: one PUT per device. Plain node:http without keep-alive, so nothing of it stays open afterwards.
import http from "node:http";

export interface AdminClient {
  /** PUT /admin/devices/{id} with `entry`; resolves with the entry as stored, rejects unless 200/201. */
  put(id: string, entry: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export function adminClient(gatewayUrl: string, token: string, timeoutMs = 10_000): AdminClient {
  const base = new URL(gatewayUrl);
  const put = (id: string, entry: Record<string, unknown>): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const body = JSON.stringify(entry);
      const req = http.request(
        {
          host: base.hostname,
          port: base.port,
          path: `/admin/devices/${encodeURIComponent(id)}`,
          method: "PUT",
          agent: false,
          timeout: timeoutMs,
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          const parts: Buffer[] = [];
          res.on("data", (b: Buffer) => parts.push(b));
          res.on("error", reject);
          res.on("end", () => {
            const text = Buffer.concat(parts).toString("utf8");
            if (res.statusCode !== 200 && res.statusCode !== 201) {
              reject(new Error(`PUT /admin/devices/${id}: status ${res.statusCode}: ${text.slice(0, 300)}`));
              return;
            }
            try {
              resolve(JSON.parse(text) as Record<string, unknown>);
            } catch {
              reject(new Error(`PUT /admin/devices/${id}: the answer is not JSON: ${text.slice(0, 300)}`));
            }
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`PUT /admin/devices/${id}: no answer within ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body);
    });
  return { put };
}
