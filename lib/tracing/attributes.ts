import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_SERVICE_INSTANCE_ID,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_PATH,
} from "@opentelemetry/semantic-conventions";

/**
 * Span attribute names: the semantic conventions' where they apply (stable ones only), and this project's
 * own under `gateway.` and `device_agent.` for what the conventions have no name for. The one file that
 * imports @opentelemetry/semantic-conventions.
 */
export const ATTR = {
  method: ATTR_HTTP_REQUEST_METHOD,
  /** The path the client asked for (server spans), or the device was sent (client spans); never the query, which may hold secrets. */
  path: ATTR_URL_PATH,
  statusCode: ATTR_HTTP_RESPONSE_STATUS_CODE,
  /** What a failed span failed with: a catalogue code, the agent's failure code, or the status code itself. */
  errorType: ATTR_ERROR_TYPE,
  serverAddress: ATTR_SERVER_ADDRESS,
  serverPort: ATTR_SERVER_PORT,
  deviceId: "gateway.device.id",
  /** The device agent's own JID (its spans' device). */
  deviceJid: "device_agent.jid",
  /** xmpp, http, shadow (or none, for a request that never got that far). */
  transport: "gateway.transport",
  requestId: "gateway.request.id",
  /** The client closed its connection before the answer was written whole. */
  clientGone: "gateway.client.gone",
  /** The instance that owns an exchange whose reply reached another one. */
  owner: "gateway.exchange.owner",
  /** The XEP-0332 exchange's IQ id. */
  exchangeId: "gateway.exchange.id",
} as const;

/** The path of a request target (`/a/b?x=1` → `/a/b`), without allocating when there is no query. */
export function pathOnly(target: string): string {
  const q = target.indexOf("?");
  return q < 0 ? target : target.slice(0, q);
}

/** The resource attributes the SDK's set-up gives every span (sdk.ts). */
export const RESOURCE_ATTR = {
  serviceName: ATTR_SERVICE_NAME,
  serviceVersion: ATTR_SERVICE_VERSION,
  serviceInstanceId: ATTR_SERVICE_INSTANCE_ID,
} as const;
