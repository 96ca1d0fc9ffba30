import { createHash } from "node:crypto";

/**
 * How many of `candidates` devices `percent` (0 < percent <= 100) takes: rounded up, so any share of a
 * non-empty fleet takes at least one device. The product is rounded to 9 decimals first: in binary floating
 * point 10% of 30 is 3.0000000000000004, which must take 3, not 4.
 */
export function shareOf(candidates: number, percent: number): number {
  if (candidates <= 0) return 0;
  const exact = Number(((candidates * percent) / 100).toFixed(9));
  return Math.min(candidates, Math.max(1, Math.ceil(exact)));
}

/**
 * The candidates in the order of a hash of their ids (SHA-256, then the id itself for the impossible tie):
 * a wave is spread over the fleet rather than taken from the start of one prefix, and the same fleet gives
 * the same order whatever order the ids came in.
 */
export function hashOrder(ids: readonly string[]): string[] {
  return ids
    .map((id) => ({ id, key: createHash("sha256").update(id, "utf8").digest("hex") }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((x) => x.id);
}

/** The devices a percentage takes: the first shareOf() of the candidates in hashOrder(). */
export function pickPercent(ids: readonly string[], percent: number): string[] {
  return hashOrder(ids).slice(0, shareOf(ids.length, percent));
}
