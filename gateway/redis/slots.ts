/**
 * Redis Cluster's hash slot of a key (Redis Cluster specification, "Key distribution model" and "Hash tags"):
 * CRC16 (XMODEM: polynomial 0x1021, initial 0) of the key's bytes modulo 16384, where a key with a `{`
 * followed later by a `}` with at least one byte between them hashes only those bytes (the first `{` and the
 * first `}` after it); an empty first tag (`foo{}{bar}`) means the whole key is hashed.
 *
 * Written here rather than taken from cluster-key-slot (ioredis's dependency): its version 1.1.1 hashes
 * `foo{}{bar}` as `{bar` instead of the whole key, which Redis does not.
 */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[i] = crc & 0xffff;
  }
  return table;
})();

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ byte) & 0xff] as number);
  return crc;
}

/** The part of a key its slot is the hash of: its hash tag, or the whole key (the rule of keySlot, on text). */
function hashedPart(key: string): string {
  const open = key.indexOf("{");
  if (open === -1) return key;
  const close = key.indexOf("}", open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

export function keySlot(key: string | Uint8Array): number {
  const bytes = typeof key === "string" ? Buffer.from(key, "utf8") : key;
  const open = bytes.indexOf(0x7b);
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1);
    if (close > open + 1) return crc16(bytes.subarray(open + 1, close)) & 0x3fff;
  }
  return crc16(bytes) & 0x3fff;
}

/**
 * Throws when the keys of one script call are not all of one hash slot. A Redis Cluster refuses such a call
 * (CROSSSLOT), a single Redis does not: RedisStore.script() calls this on every script call, so that the
 * layout rule of keys.ts is kept by code that only ever runs on a single Redis (tests, small deployments).
 * A programming error, not a request's: a plain Error.
 */
export function assertOneSlot(script: string, keys: ReadonlyArray<string | number>): void {
  // One key is one slot, and keys with one hash tag are one slot: nothing to hash (every call on a
  // request's way). Only keys of different tags (or without one) are hashed, since those may still share a slot.
  if (keys.length <= 1) return;
  const first = hashedPart(String(keys[0]));
  if (keys.every((key) => hashedPart(String(key)) === first)) return;
  const slots = keys.map((key) => keySlot(String(key)));
  if (new Set(slots).size <= 1) return;
  throw new Error(
    `Redis script ${script} touches keys of more than one hash slot (${keys.map((k, i) => `${String(k)} → ${slots[i]}`).join(", ")}): ` +
      "keys touched together must share a hash tag (gateway/redis/keys.ts)",
  );
}

/** One item of a batched script (RedisStore.batchScript): its keys, all of one hash slot, and its arguments. */
export interface ScriptItem {
  keys: readonly string[];
  args: ReadonlyArray<string | number>;
}
