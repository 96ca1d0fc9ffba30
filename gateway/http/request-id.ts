import { ServerResponse, type IncomingMessage, type OutgoingHttpHeader, type OutgoingHttpHeaders } from "node:http";
import { REQUEST_ID } from "../messages/device-messages.js";
import { facts, setFacts, type RequestFacts } from "./context.js";
import { requestIdOf } from "./raw-error.js";

const REQUEST_ID_LOWER = REQUEST_ID.toLowerCase();

/** `X-Request-Id` on every response: the caller's, when it is a sane token, else a new UUID. Set at once. */
export function assignRequestId(req: IncomingMessage, res: ServerResponse): RequestFacts {
  const noted = noteRequestId(req, res);
  res.setHeader(REQUEST_ID, noted.requestId);
  return noted;
}

/**
 * The request's id in its facts only: a GatewayResponse puts it on the head as the head is written. Any
 * other response (a server not made by HttpServer, such as a test's) gets the header at once.
 */
export function noteRequestId(req: IncomingMessage, res: ServerResponse): RequestFacts {
  const noted = setFacts(res, { requestId: requestIdOf(req.headers), transport: "none" });
  if (!(res instanceof GatewayResponse)) res.setHeader(REQUEST_ID, noted.requestId);
  return noted;
}

/** Sets X-Request-Id from the request's facts unless the response has one: before a head is written. */
export function stampRequestId(res: ServerResponse): void {
  const id = facts(res).requestId;
  if (id !== "" && !res.hasHeader(REQUEST_ID)) res.setHeader(REQUEST_ID, id);
}

/**
 * The gateway's responses (HttpServer's `ServerResponse` class): X-Request-Id goes on the head as it is
 * written, from the request's facts (noteRequestId), however it is written (node's implicit head included:
 * `end()` calls `writeHead`). Set on arrival instead, a request waiting for its device would hold the
 * response's header table and its entry all the while: about 260 bytes a request, thousands at once.
 * Express swaps a response's prototype for its own (a plain ServerResponse's): a request handed to the
 * gateway's own routes gets its id at once instead (stampRequestId). A head written with a header list that
 * carries X-Request-Id already (the writer of a device's answer in device-messages.ts, the raw error in
 * raw-error.ts) is not stamped: node then writes it from the list alone, without a header table. A list
 * without one is merged into the table the stamp makes (node's rule for `writeHead` after `setHeader`).
 */
export class GatewayResponse<Request extends IncomingMessage = IncomingMessage> extends ServerResponse<Request> {
  override writeHead(
    statusCode: number,
    reason?: string | OutgoingHttpHeaders | OutgoingHttpHeader[],
    headers?: OutgoingHttpHeaders | OutgoingHttpHeader[],
  ): this {
    if (!carriesRequestId(typeof reason === "string" || reason === undefined ? headers : reason)) stampRequestId(this);
    // Node's writeHead takes a non-string reason as the headers (its overloads, as called).
    return super.writeHead(statusCode, reason as string | undefined, headers);
  }
}

/**
 * Whether a header list given to writeHead names X-Request-Id: an object, a flat list of names and values,
 * or a list of [name, value] pairs (node's three forms). Looked for from the end: the writers that carry it
 * put it last.
 */
function carriesRequestId(headers: OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined): boolean {
  if (headers === undefined) return false;
  if (!Array.isArray(headers)) return Object.keys(headers).some(isRequestId);
  const pairs = Array.isArray(headers[0]);
  for (let i = pairs ? headers.length - 1 : headers.length - 2; i >= 0; i -= pairs ? 1 : 2) {
    const entry = headers[i];
    if (isRequestId(pairs && Array.isArray(entry) ? entry[0] : entry)) return true;
  }
  return false;
}

const isRequestId = (name: unknown): boolean =>
  typeof name === "string" && name.length === REQUEST_ID.length && name.toLowerCase() === REQUEST_ID_LOWER;

/** The same as a middleware, for an app of its own (tests). */
export function requestId(): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  return (req, res, next) => {
    assignRequestId(req, res);
    next();
  };
}
