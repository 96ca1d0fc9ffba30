// What one attempt of a request got, judged strictly: the device's reply to THIS request (its token echoed),
// a catalogue error with its own status, an accepted asynchronous request, or nothing; anything else is "bad".
import type http from "node:http";
import { CATALOGUE, type ErrorCode } from "../../../gateway/errors.js";
import type { DeviceBody } from "./device-book.js";
import { NOT_KEPT, type Spec } from "./requests.js";

/** What the gateway says of a key whose first request never recorded its outcome. */
const UNRECORDED = "never recorded its outcome";

export type Answer =
  | { kind: "device"; status: number; body: string; via: string }
  /** A catalogue error; its code is "?" only for HEAD, whose answers carry no body (status and headers only). */
  | {
      kind: "error";
      status: number;
      code: ErrorCode | "?";
      via: string;
      /** A key's kept "outcome unknown": its first request never recorded its outcome (gateway/delivery/idempotency.ts). */
      unrecorded?: true;
    }
  | { kind: "accepted"; id: string; via: string }
  | { kind: "not-sent"; why: string; via: string }
  | { kind: "no-answer"; why: string; via: string }
  | { kind: "bad"; why: string; via: string };

/** Checks that a reply is the device's answer to THIS request; undefined if so, else why not. */
function foreignReply(spec: Spec, status: number, headers: http.IncomingHttpHeaders, body: string, method: string): string | undefined {
  const expected = spec.method === "DELETE" ? 204 : 200;
  if (status !== expected) return `status ${status}, expected ${expected}`;
  if (headers["x-device"] !== spec.device) return `X-Device ${String(headers["x-device"])}, asked ${spec.device}`;
  if (headers["x-token"] !== spec.token) return `X-Token ${String(headers["x-token"])}, sent ${spec.token}`;
  if (method === "HEAD" || status === 204) return body === "" ? undefined : `a body on ${method} ${status}`;
  try {
    const parsed = JSON.parse(body) as Partial<DeviceBody>;
    if (parsed.token !== spec.token || parsed.device !== spec.device || parsed.method !== spec.method) {
      return `body of ${String(parsed.device)} ${String(parsed.method)} ${String(parsed.token)}`;
    }
  } catch {
    return `not the device's JSON: ${body.slice(0, 80)}`;
  }
  return undefined;
}

export function classify(
  spec: Spec,
  requestId: string,
  method: string,
  status: number,
  headers: http.IncomingHttpHeaders,
  body: string,
  via: string,
): Answer {
  if (headers["x-request-id"] !== requestId)
    return { kind: "bad", why: `X-Request-Id ${String(headers["x-request-id"])} on the answer to ${requestId}`, via };
  if (status === 202 && headers["location"] !== undefined) {
    const id = /^\/requests\/([A-Za-z0-9_-]+)$/.exec(headers["location"])?.[1];
    if (!spec.async || !id || headers["preference-applied"] !== "respond-async")
      return { kind: "bad", why: `unexpected 202 ${headers["location"]}`, via };
    return { kind: "accepted", id, via };
  }
  if ((headers["content-type"] ?? "").startsWith("application/json") && body.includes('"error"')) {
    let code: string | undefined;
    let message: string | undefined;
    try {
      ({ code, message } = (JSON.parse(body) as { error?: { code?: string; message?: string } }).error ?? {});
    } catch {
      // not JSON after all: judged below as a device reply
    }
    if (code !== undefined) {
      if (!Object.hasOwn(CATALOGUE, code)) return { kind: "bad", why: `uncatalogued error ${status} ${body.slice(0, 120)}`, via };
      const c = code as ErrorCode;
      if (c === "GW_INTERNAL") return { kind: "bad", why: `500 GW_INTERNAL: ${body.slice(0, 160)}`, via };
      if (c !== "GW_DEVICE_ERROR" && CATALOGUE[c].status !== status) return { kind: "bad", why: `${c} with status ${status}`, via };
      return { kind: "error", status, code: c, via, ...(message?.includes(UNRECORDED) ? { unrecorded: true as const } : {}) };
    }
  }
  // HEAD: no body, so no code to read; a gateway error is known by its JSON type, a catalogue status, no X-Device.
  const catalogueStatus = Object.values(CATALOGUE).some((c) => c.status === status);
  if (
    method === "HEAD" &&
    status !== 200 &&
    catalogueStatus &&
    headers["x-device"] === undefined &&
    (headers["content-type"] ?? "").startsWith("application/json")
  ) {
    return { kind: "error", status, code: "?", via };
  }
  const foreign = foreignReply(spec, status, headers, body, method);
  if (foreign === undefined) return { kind: "device", status, body, via };
  return { kind: "bad", why: `not its own reply (${foreign})`, via };
}

export function answerKey(a: Answer): string {
  switch (a.kind) {
    case "device":
      return `device ${a.status}`;
    case "error":
      return `${a.status} ${a.code}`;
    case "accepted":
      return "202 accepted";
    default:
      return `${a.kind}: ${a.why}`;
  }
}

/** Same stored outcome: same status and body for a device reply, same code for an error. */
export function sameOutcome(a: Answer, b: Answer): boolean {
  if (a.kind === "device" && b.kind === "device") return a.status === b.status && a.body === b.body;
  if (a.kind === "error" && b.kind === "error") return a.code === b.code && a.status === b.status;
  return false;
}

/** An outcome the gateway keeps under the key: a device reply, or an error that does not prove "not reached". */
export function keptOutcome(a: Answer): boolean {
  return a.kind === "device" || (a.kind === "error" && !NOT_KEPT.has(a.code));
}
