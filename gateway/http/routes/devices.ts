import type { IncomingMessage, ServerResponse } from "node:http";
import type { Accepted, Delivery, DeviceCall, ReadBody } from "../../delivery/deliver.js";
import { isGatewayError } from "../../errors.js";
import type { Admission } from "../../limits/admission.js";
import type { ByteBudget } from "../../limits/byte-budget.js";
import type { AddressedRequest } from "../addressing.js";
import { hasBody, readBody } from "../body.js";
import { facts, type RequestFacts } from "../context.js";
import type { DeviceAddress } from "../device-address.js";
import { sendError, sendJson } from "../error-response.js";
import { whenClosed } from "../../../lib/http/response-end.js";
import type { TraceSpan, Tracing } from "../../../lib/tracing/tracing.js";
import type { DeviceRoute } from "../../registry/resolver.js";
import { startRequestSpan } from "../request-span.js";
import { stampRequestId } from "../request-id.js";

/** Which device a request is for, if any (README, "Device requests": path, Host or forward-proxy addressing). */
export interface Addressing {
  address(req: AddressedRequest): Promise<DeviceAddress | undefined>;
}

/** A client request as node's server hands it over (the device lane never enters Express). */
type ClientRequest = IncomingMessage & { method: string; url: string };

export interface DeviceRouteDeps {
  addressing: Addressing;
  /** The instance's in-flight ceiling and the per-client rate limit, passed before any device work. */
  admission: Pick<Admission, "admit">;
  /** Everything after: route, deadline, transport, the device's answer (gateway/delivery/deliver.ts). */
  delivery: Pick<Delivery, "deliver">;
  maxBodyBytes: number;
  /** The instance's GATEWAY_MAX_BUFFERED_BYTES: bodies read into memory reserve their bytes in it. */
  budget?: ByteBudget;
  /** On when the instance traces (README, "Tracing"): a SERVER span per device request. */
  tracing?: Tracing | undefined;
}

/**
 * Requests for devices, however they are addressed. Mounted before the gateway's own routes: with Host or
 * forward-proxy addressing, `GET /healthz` may well be a device's own path. Anything that is not a device
 * request goes on to the gateway's routes. Here: which device, admission, and reading the request; the rest
 * is delivery's.
 */
export function deviceRequests(
  deps: DeviceRouteDeps,
): (req: ClientRequest, res: ServerResponse, rest: GatewayRoutes, next: () => void, failed: (err: unknown) => void) => void {
  // Whatever escapes the handler (even from writing an error) goes to `failed`, never becomes an unhandled
  // rejection, which would end the process with every exchange in flight.
  return (req, res, rest, next, failed) => {
    handle(deps, req, res, rest, next, failed).catch(failed);
  };
}

/** The gateway's own routes, for a request that is not a device's (Express's calling convention: `next` when none answers). */
type GatewayRoutes = (req: IncomingMessage, res: ServerResponse, next: () => void) => void;

async function handle(
  deps: DeviceRouteDeps,
  req: ClientRequest,
  res: ServerResponse,
  rest: GatewayRoutes,
  next: () => void,
  failed: (err: unknown) => void,
): Promise<void> {
  const f = facts(res);
  // Read before the first await, in the front door's tick: the span starts with the request.
  const startTime = deps.tracing ? performance.now() : 0;
  try {
    const address = await deps.addressing.address(req);
    if (!address) {
      // Handed on as they came, not wrapped in a closure made for every request.
      // Express swaps the response's prototype: its id goes on now (GatewayResponse).
      stampRequestId(res);
      rest(req, res, next);
      return;
    }
    f.deviceId = address.deviceId;
    // Made once the request is known to be a device's: the gateway's own routes (probes, scrapes) get none.
    const trace = deps.tracing ? startRequestSpan(deps.tracing, req, res, address.deviceId, startTime) : undefined;
    await deps.admission.admit(req, res);
    // Not awaited: a request held for its device's answer keeps one reaction of this route's, not this
    // function's suspended frame and the links of its promise (thousands may be held at once).
    deps.delivery.deliver(address.deviceId, new RouteCall(deps, req, res, f, address.resource, trace)).then(
      (delivered) => {
        try {
          if (delivered) answerAccepted(res, delivered);
        } catch (err) {
          failed(err);
        }
      },
      (err: unknown) => {
        try {
          answerFailure(res, err);
        } catch (thrown) {
          failed(thrown);
        }
      },
    );
  } catch (err) {
    answerFailure(res, err);
  }
}

/** 202 for a request accepted for later (RFC 7240 `Prefer: respond-async`), where to ask for its result. */
function answerAccepted(res: ServerResponse, accepted: Accepted): void {
  res.setHeader("Location", `/requests/${accepted.id}`);
  res.setHeader("Preference-Applied", "respond-async");
  sendJson(res, 202, { requestId: accepted.id, status: accepted.state });
}

/** A device request that failed: its catalogue error; throws anything else (a bug), for the central handler. */
function answerFailure(res: ServerResponse, err: unknown): void {
  // A client that hung up (mid-body or while waiting) gets nothing; the access log records 499.
  // (The response's state, not the request's: a request stream is destroyed once fully read.)
  if (res.destroyed) return;
  // Anything that is not a catalogue error is a bug: the central handler logs it and answers 500.
  if (!isGatewayError(err)) throw err;
  // The rest of the body is not wanted: close, after a linger that lets a client still sending read this (linger.ts).
  if (err.code === "GW_PAYLOAD_TOO_LARGE") res.setHeader("Connection", "close");
  sendError(res, err);
}

/**
 * A client request for a device, as delivery takes it (DeviceCall). A class: its methods are shared, where
 * an object of closures would be made for every request and held as long as it is.
 */
class RouteCall implements DeviceCall {
  readonly requestId: string;
  readonly respondAsync: boolean;
  readonly idempotencyKey: string | undefined;

  constructor(
    private readonly deps: DeviceRouteDeps,
    readonly req: ClientRequest,
    readonly res: ServerResponse,
    private readonly facts: RequestFacts,
    readonly resource: string,
    readonly trace: TraceSpan | undefined,
  ) {
    this.requestId = facts.requestId;
    this.respondAsync = prefersAsync(req);
    this.idempotencyKey = headerOf(req, "idempotency-key") || undefined;
  }

  readBody(): Promise<ReadBody> {
    return readHeld(this.deps, this.req, this.res);
  }

  onTransport(transport: DeviceRoute["transport"]): void {
    this.facts.transport = transport;
  }
}

/**
 * The body read whole, its bytes held in the instance's byte budget until the response is over, or, for an
 * accepted asynchronous request (handed over), until the pipeline's delivery of it ends (it releases them then).
 */
async function readHeld(deps: DeviceRouteDeps, req: IncomingMessage, res: ServerResponse): Promise<ReadBody> {
  // Nothing to hold for a request without a body (most GETs): no reservation, no listener.
  const held = hasBody(req) ? deps.budget?.open() : undefined;
  if (!held) return { body: await readBody(req, deps.maxBodyBytes, undefined), handOver: nothingHeld };
  let handedOver = false;
  whenClosed(res, () => {
    if (!handedOver) held.release();
  });
  const body = await readBody(req, deps.maxBodyBytes, held);
  return { body, held, handOver: () => (handedOver = true) };
}

const nothingHeld = (): void => undefined;

/** RFC 7240 §4.1: `Prefer: respond-async`, among other preferences, in any case. */
export function prefersAsync(req: IncomingMessage): boolean {
  const prefer = headerOf(req, "prefer");
  return prefer !== undefined && prefer.split(",").some((p) => p.split(";")[0]?.trim().toLowerCase() === "respond-async");
}

/** A request header field's value, repeats joined (what Express's `req.get` gave). `name` in lower case. */
function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}
