import type { ServerResponse } from "node:http";
import type { ErrorCode } from "../errors.js";
import type { Transport } from "../metrics/metrics.js";

/** What a request's handlers learn about it, read back by the access log and the metrics. */
export interface RequestFacts {
  requestId: string;
  deviceId?: string;
  transport: Transport;
  errorCode?: ErrorCode;
}

/**
 * Kept as the response's `locals`: the one place Express also keeps per-request values (it leaves a
 * `locals` it finds in place), so the device lane, which never enters Express, and the gateway's own
 * routes, which do, share it.
 */
type WithFacts = ServerResponse & { locals?: RequestFacts };

export function setFacts(res: ServerResponse, facts: RequestFacts): RequestFacts {
  (res as WithFacts).locals = facts;
  return facts;
}

export function facts(res: ServerResponse): RequestFacts {
  return ((res as WithFacts).locals ??= { requestId: "", transport: "none" });
}
