// The requests of a "nothing lost" run: a mix of every method, some `Prefer: respond-async`, some unsafe
// requests with an `Idempotency-Key`, each carrying a token of its own that its device echoes back.
import { randomBytes } from "node:crypto";
import type { ErrorCode } from "../../../gateway/errors.js";

export type Method = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS";
/** Not safe (RFC 9110 §9.2.1): a device may act on them. */
export const UNSAFE: ReadonlySet<Method> = new Set<Method>(["POST", "PUT", "PATCH", "DELETE"]);
const METHOD_WEIGHTS: ReadonlyArray<[Method, number]> = [
  ["GET", 4],
  ["HEAD", 1],
  ["OPTIONS", 1],
  ["POST", 3],
  ["PUT", 2],
  ["PATCH", 2],
  ["DELETE", 2],
];

/** Catalogue errors after which a keyed request is sent again (the device was not reached, or it still runs). */
export const KEYED_RETRY: ReadonlySet<string> = new Set<ErrorCode>([
  "GW_IDEMPOTENCY_IN_FLIGHT",
  "GW_STORE_UNAVAILABLE",
  "GW_XMPP_UNAVAILABLE",
  "GW_DEVICE_OFFLINE",
  "GW_SHUTTING_DOWN",
  "GW_OVERLOADED",
  "GW_DEVICE_BUSY",
  "GW_DEVICE_QUEUE_TIMEOUT",
]);

/** Outcomes that prove the device was not reached: not kept under the key (README "Idempotency-Key"). */
export const NOT_KEPT: ReadonlySet<string> = new Set<ErrorCode>([
  "GW_DEVICE_OFFLINE",
  "GW_DEVICE_BUSY",
  "GW_DEVICE_QUEUE_TIMEOUT",
  "GW_XMPP_UNAVAILABLE",
  "GW_STORE_UNAVAILABLE",
  "GW_SHUTTING_DOWN",
  "GW_UNKNOWN_DEVICE",
  "GW_OVERLOADED",
  "GW_IDEMPOTENCY_IN_FLIGHT",
  "GW_IDEMPOTENCY_MISMATCH",
]);

export interface Spec {
  seq: number;
  token: string;
  device: string;
  method: Method;
  path: string;
  body?: string;
  async: boolean;
  key?: string;
  /** Sent once more right after its answer, directly to an instance, as by a client that lost the answer. */
  replay: boolean;
}

function pick<T>(weights: ReadonlyArray<[T, number]>): T {
  const total = weights.reduce((s, [, w]) => s + w, 0);
  let r = Math.random() * total;
  for (const [value, w] of weights) {
    if ((r -= w) < 0) return value;
  }
  return (weights[0] as [T, number])[0];
}

/** Request number `seq` of the mix, to one of `devices`; a fifth are slow (path `/slow/…`, see DeviceBook). */
export function makeSpec(seq: number, devices: readonly string[]): Spec {
  const method = pick(METHOD_WEIGHTS);
  const token = `n${seq}-${randomBytes(4).toString("hex")}`;
  const slow = Math.random() < 0.2;
  const unsafe = UNSAFE.has(method);
  const key = unsafe && Math.random() < 0.6 ? `key-${token}` : undefined;
  return {
    seq,
    token,
    device: devices[Math.floor(Math.random() * devices.length)] as string,
    method,
    path: `/${slow ? "slow" : "op"}/${token}`,
    ...(unsafe && method !== "DELETE" ? { body: JSON.stringify({ token, seq }) } : {}),
    async: method !== "HEAD" && method !== "OPTIONS" && Math.random() < 0.2,
    ...(key ? { key } : {}),
    replay: key !== undefined && Math.random() < 0.3,
  };
}
