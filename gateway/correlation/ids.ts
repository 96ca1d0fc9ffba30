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
