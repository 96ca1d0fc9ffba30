/** What the catalogue holds for each code. */
export interface CatalogueEntry {
  /** The HTTP status (GW_DEVICE_ERROR's is set per stanza error, GatewayErrorOptions.status). */
  status: number;
  /** The default message; clients rely on the code, never on this text. */
  message: string;
  /**
   * The error proves the device was not reached (nothing was sent to it): an Idempotency-Key whose request
   * ended so is freed and a retry goes to the device again. Every other ending (a reply, a timeout, a broken
   * reply) may have actuated the device, so it is kept as the answer to retries (delivery/stored-outcome.ts).
   */
  notReached: boolean;
  /**
   * The HTTP pass-through (proxy/pass-through.ts) can end a request with it: its series of
   * gateway_proxy_errors_total exists from the start, at 0, so a rate over it is defined before the first one.
   */
  passThrough: boolean;
}

/**
 * The error catalogue (README, "Errors", whose table test/unit/readme-error-table.test.ts keeps equal to this,
 * row for row): every error the gateway makes has a stable code, one HTTP status and a default message, and
 * the facts other modules need about it. Clients and tests rely on the codes; the messages may change.
 */
export const CATALOGUE = {
  GW_BAD_DEVICE_ID: { status: 400, message: "device id must be 1-64 of [A-Za-z0-9._-]", notReached: false, passThrough: false },
  GW_UNKNOWN_DEVICE: { status: 404, message: "no such device", notReached: true, passThrough: false },
  GW_NOT_A_DEVICE: { status: 403, message: "target is not a registered device", notReached: false, passThrough: false },
  GW_METHOD_NOT_ALLOWED: { status: 405, message: "method is not carried to devices", notReached: false, passThrough: true },
  GW_PAYLOAD_TOO_LARGE: { status: 413, message: "request body is over the limit", notReached: false, passThrough: true },
  GW_DEVICE_BUSY: { status: 429, message: "device has too many requests in flight", notReached: true, passThrough: false },
  GW_RATE_LIMITED: { status: 429, message: "client sent more requests than its rate limit allows", notReached: false, passThrough: false },
  GW_OVERLOADED: { status: 503, message: "gateway instance holds as many requests as it may", notReached: false, passThrough: false },
  GW_DEVICE_OFFLINE: { status: 503, message: "device is not connected", notReached: true, passThrough: false },
  GW_DEVICE_TIMEOUT: { status: 504, message: "device did not answer in time", notReached: false, passThrough: false },
  GW_DEVICE_QUEUE_TIMEOUT: {
    status: 504,
    message: "no slot of the device came free before the deadline; the device was not reached",
    notReached: true,
    passThrough: false,
  },
  GW_OUTCOME_UNKNOWN: {
    status: 504,
    message: "the request was sent to the device, but its answer was lost: whether the device acted is unknown",
    notReached: false,
    passThrough: false,
  },
  GW_BAD_DEVICE_REPLY: { status: 502, message: "device reply is not valid XEP-0332", notReached: false, passThrough: false },
  GW_DEVICE_ERROR: { status: 502, message: "device answered with an XMPP error", notReached: false, passThrough: false },
  GW_UPSTREAM_UNREACHABLE: {
    status: 502,
    message: "device HTTP server refused or reset the connection",
    notReached: false,
    passThrough: true,
  },
  GW_UPSTREAM_TIMEOUT: { status: 504, message: "device HTTP server did not answer in time", notReached: false, passThrough: true },
  GW_BAD_UPSTREAM_REPLY: {
    status: 502,
    message: "device HTTP server sent a response that is not valid HTTP/1.1",
    notReached: false,
    passThrough: true,
  },
  GW_XMPP_UNAVAILABLE: { status: 503, message: "gateway is not connected to the XMPP server", notReached: true, passThrough: false },
  GW_STORE_UNAVAILABLE: { status: 503, message: "gateway store (Redis) is unreachable", notReached: true, passThrough: false },
  GW_SHUTTING_DOWN: { status: 503, message: "gateway instance is shutting down", notReached: true, passThrough: true },
  GW_IDEMPOTENCY_MISMATCH: { status: 422, message: "Idempotency-Key was used for another request", notReached: false, passThrough: false },
  GW_IDEMPOTENCY_IN_FLIGHT: {
    status: 409,
    message: "a request with this Idempotency-Key is still running",
    notReached: false,
    passThrough: false,
  },
  GW_UNKNOWN_REQUEST: {
    status: 404,
    message: "no such asynchronous request, or its result expired",
    notReached: false,
    passThrough: false,
  },
  GW_NOT_FOUND: { status: 404, message: "no such route", notReached: false, passThrough: false },
  GW_INVALID_FIELD: { status: 400, message: "a field of the request is not valid", notReached: false, passThrough: false },
  GW_UNAUTHORIZED: { status: 401, message: "missing or wrong bearer token", notReached: false, passThrough: false },
  GW_CONFLICT: { status: 409, message: "conflicts with another device's entry", notReached: false, passThrough: false },
  GW_BAD_REQUEST: { status: 400, message: "request is not valid HTTP/1.1", notReached: false, passThrough: false },
  GW_REQUEST_TIMEOUT: { status: 408, message: "request did not arrive in time", notReached: false, passThrough: false },
  GW_HEADERS_TOO_LARGE: { status: 431, message: "request has too many or too large header fields", notReached: false, passThrough: false },
  GW_EXPECTATION_FAILED: {
    status: 417,
    message: "the gateway meets no expectation but 100-continue",
    notReached: false,
    passThrough: false,
  },
  GW_INTERNAL: { status: 500, message: "internal gateway error", notReached: false, passThrough: true },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof CATALOGUE;

export interface GatewayErrorOptions {
  message?: string;
  /** Overrides the catalogue status where the code's status depends on the case (GW_DEVICE_ERROR). */
  status?: number;
  /** Seconds, for 429 and 503: when a retry may succeed. */
  retryAfterS?: number;
  /** For GW_INVALID_FIELD (and GW_CONFLICT): the input field at fault, as `field` in the JSON body. */
  field?: string;
  cause?: unknown;
}

export class GatewayError extends Error {
  override readonly name = "GatewayError";
  readonly status: number;
  readonly retryAfterS: number | undefined;
  readonly field: string | undefined;

  constructor(
    readonly code: ErrorCode,
    opts: GatewayErrorOptions = {},
  ) {
    super(opts.message ?? CATALOGUE[code].message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.status = opts.status ?? CATALOGUE[code].status;
    this.retryAfterS = opts.retryAfterS;
    this.field = opts.field;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}

/** Anything thrown that is not already a catalogue error is an internal error: its details stay in the log. */
export function toGatewayError(err: unknown): GatewayError {
  return isGatewayError(err) ? err : new GatewayError("GW_INTERNAL", { cause: err });
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; field?: string; deviceId?: string; requestId: string };
}

export function errorBody(err: GatewayError, requestId: string, deviceId?: string): ErrorBody {
  const field = err.field !== undefined ? { field: err.field } : {};
  return { error: { code: err.code, message: err.message, ...field, ...(deviceId ? { deviceId } : {}), requestId } };
}
