import { randomFillSync } from "node:crypto";

const ID_BYTES = 12;
const POOL_IDS = 512;
const pool = Buffer.alloc(ID_BYTES * POOL_IDS);
let next = POOL_IDS;

/**
 * Correlation and stream ids: 96 random bits, so a device (or anyone on the XMPP server) cannot guess
 * another exchange's id to slip in a reply; the sender check is the second guard. Random bytes are drawn
 * from the CSPRNG 6 KiB at a time rather than with one system call per id.
 */
export function newId(): string {
  if (next === POOL_IDS) {
    randomFillSync(pool);
    next = 0;
  }
  const id = pool.toString("base64url", next * ID_BYTES, (next + 1) * ID_BYTES);
  next++;
  return id;
}

/** What newId makes: 12 bytes in base64url, 16 characters. */
const GATEWAY_ID = /^[A-Za-z0-9_-]{16}$/;

/**
 * Whether an IQ id can be one of this gateway's. Anything else is foreign, whoever sent it, and is dropped
 * before it costs a Redis lookup or a log line of its size (an XMPP account may send ids of hundreds of KB).
 */
export function isGatewayId(id: string): boolean {
  return GATEWAY_ID.test(id);
}

/**
 * The longest stream id a device may choose for a chunked reply (XEP-0332 §3 sets none). The gateway's own
 * agent sends 16 characters; 128 leaves room for UUIDs and other schemes, and keeps Redis keys and log lines
 * small. Control characters are refused too: the id becomes part of a Redis key and a log field.
 */
export const MAX_STREAM_ID_LENGTH = 128;

export function isAcceptableStreamId(streamId: string): boolean {
  return streamId.length > 0 && streamId.length <= MAX_STREAM_ID_LENGTH && !/[\u0000-\u001f\u007f]/.test(streamId);
}

/** A string from a stanza, cut for a log line: its start and its full length. */
export function forLog(value: string | undefined, max = 64): string | undefined {
  if (value === undefined || value.length <= max) return value;
  return `${value.slice(0, max)}…(${value.length} characters)`;
}
