import { clampChunkSize, HTTP_VERSION, isHttpMethod, NS_HTTP, type HttpMethod } from "./constants.js";
import { encodeChunkedData, encodeInlineData, decodeData, type DecodedBody } from "./body.js";
import { splitIntoChunks } from "./chunks.js";
import { CodecError, malformed } from "./errors.js";
import { decodeHeaders, encodeHeaders, headerValue, type HeaderList } from "./headers.js";
import { el, findChild, type XmlElement } from "./xml.js";

export interface HttpRequestMessage {
  method: HttpMethod;
  /** Path and query as the device must see them, e.g. `/BULB/ON?x=1` (or `*` for OPTIONS). */
  resource: string;
  headers: HeaderList;
  body: Buffer;
}

export interface HttpResponseMessage {
  statusCode: number;
  statusMessage?: string;
  headers: HeaderList;
  body: Buffer;
}

export interface EncodeOptions {
  /** Bodies longer than this go as chunkedBase64. */
  chunkThreshold: number;
  /** Raw bytes per chunk; clamped to XEP-0332's 256..65536. */
  chunkSize: number;
  newStreamId: () => string;
}

/** The IQ payload, plus the `<chunk>` payloads to send as messages right after it (empty when inline). */
export interface Encoded {
  payload: XmlElement;
  chunks: XmlElement[];
  streamId?: string;
}

export interface DecodedRequest {
  method: HttpMethod;
  resource: string;
  version: string;
  headers: Array<[string, string]>;
  /** The largest chunk the requester accepts in the reply (XEP-0332 `maxChunkSize`), when it said. */
  maxChunkSize?: number;
  body: DecodedBody;
}

export interface DecodedResponse {
  statusCode: number;
  statusMessage: string;
  headers: Array<[string, string]>;
  body: DecodedBody;
}

const REQUEST_NAMES = new Set(["req", "request"]); // `request`/`response`: slixmpp's plugin dialect
const RESPONSE_NAMES = new Set(["resp", "response"]);
const RESOURCE = /^(\*|\/[^\s\x00-\x1f\x7f]*)$/;
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function isRequestPayload(node: XmlElement): boolean {
  return REQUEST_NAMES.has(node.name) && node.attrs.xmlns === NS_HTTP;
}

export function isResponsePayload(node: XmlElement): boolean {
  return RESPONSE_NAMES.has(node.name) && node.attrs.xmlns === NS_HTTP;
}

function encodeBody(
  body: Buffer,
  headers: HeaderList,
  opts: EncodeOptions,
): { data?: XmlElement; chunks: XmlElement[]; streamId?: string } {
  if (body.length <= opts.chunkThreshold) return { data: encodeInlineData(body, headerValue(headers, "content-type")), chunks: [] };
  const streamId = opts.newStreamId();
  return { data: encodeChunkedData(streamId), chunks: splitIntoChunks(streamId, body, clampChunkSize(opts.chunkSize)), streamId };
}

function children(...nodes: Array<XmlElement | undefined>): XmlElement[] {
  return nodes.filter((n): n is XmlElement => n !== undefined);
}

export function encodeRequest(msg: HttpRequestMessage, opts: EncodeOptions & { maxChunkSize?: number }): Encoded {
  const { data, chunks, streamId } = encodeBody(msg.body, msg.headers, opts);
  const attrs = {
    xmlns: NS_HTTP,
    method: msg.method,
    resource: msg.resource,
    version: HTTP_VERSION,
    maxChunkSize: opts.maxChunkSize === undefined ? undefined : String(clampChunkSize(opts.maxChunkSize)),
    // We take bodies inline or as chunkedBase64 only: tell the device not to offer the other forms.
    sipub: "false",
    ibb: "false",
    jingle: "false",
  };
  return { payload: el("req", attrs, ...children(encodeHeaders(msg.headers), data)), chunks, ...(streamId ? { streamId } : {}) };
}

export function encodeResponse(msg: HttpResponseMessage, opts: EncodeOptions): Encoded {
  const { data, chunks, streamId } = encodeBody(msg.body, msg.headers, opts);
  const attrs = {
    xmlns: NS_HTTP,
    version: HTTP_VERSION,
    statusCode: String(msg.statusCode),
    statusMessage: msg.statusMessage || undefined,
  };
  return { payload: el("resp", attrs, ...children(encodeHeaders(msg.headers), data)), chunks, ...(streamId ? { streamId } : {}) };
}

function decodeVersion(node: XmlElement): string {
  const version = node.attrs.version;
  if (!version || !/^\d\.\d$/.test(version)) throw malformed(`version ${JSON.stringify(version)} is not an HTTP version`);
  return version;
}

function decodeParts(node: XmlElement): { headers: Array<[string, string]>; body: DecodedBody } {
  return {
    headers: decodeHeaders(findChild(node, "headers")),
    body: decodeData(findChild(node, "data")),
  };
}

export function decodeRequest(node: XmlElement): DecodedRequest {
  if (!isRequestPayload(node)) throw malformed(`expected <req xmlns='${NS_HTTP}'>, got <${node.name}>`);
  const { method, resource, maxChunkSize } = node.attrs;
  if (!method) throw malformed("<req> without a method");
  if (!isHttpMethod(method)) throw new CodecError("unsupported", `method ${JSON.stringify(method)} is not carried by XEP-0332`);
  if (!resource || !RESOURCE.test(resource)) throw malformed(`resource ${JSON.stringify(resource)} is not a path`);
  let chunk: number | undefined;
  if (maxChunkSize !== undefined) {
    if (!/^\d{1,9}$/.test(maxChunkSize)) throw malformed(`maxChunkSize ${JSON.stringify(maxChunkSize)} is not a number`);
    chunk = clampChunkSize(Number(maxChunkSize));
  }
  return { method, resource, version: decodeVersion(node), ...(chunk === undefined ? {} : { maxChunkSize: chunk }), ...decodeParts(node) };
}

export function decodeResponse(node: XmlElement): DecodedResponse {
  if (!isResponsePayload(node)) throw malformed(`expected <resp xmlns='${NS_HTTP}'>, got <${node.name}>`);
  const { statusCode, statusMessage = "" } = node.attrs;
  if (!statusCode || !/^[1-5]\d\d$/.test(statusCode)) throw malformed(`statusCode ${JSON.stringify(statusCode)} is not an HTTP status`);
  if (!REASON_PHRASE.test(statusMessage)) throw malformed("statusMessage is not a legal reason phrase");
  decodeVersion(node);
  return { statusCode: Number(statusCode), statusMessage, ...decodeParts(node) };
}
