// Seeds and run counts for the property-based tests, so every run reproduces and any run can be replayed.
import type * as fc from "fast-check";

/**
 * The seed of a fuzz file: `fallback` unless FUZZ_SEED is set (decimal or 0x-hex). Printed, so a failure
 * seen in a log can be replayed with the same seed.
 */
export function fuzzSeed(label: string, fallback: number): number {
  const given = process.env.FUZZ_SEED;
  let seed = fallback;
  if (given !== undefined && given !== "") {
    const n = Number(given);
    if (!Number.isSafeInteger(n)) throw new Error(`FUZZ_SEED ${JSON.stringify(given)} is not an integer`);
    seed = n | 0;
  }
  console.log(`# ${label}: fuzz seed ${seed} (replay with FUZZ_SEED=${seed})`);
  return seed;
}

/** FUZZ_SCALE=k runs k times as many cases (default 1): deeper searches on demand, short runs by default. */
export function fuzzRuns(numRuns: number): number {
  const scale = Number(process.env.FUZZ_SCALE ?? "1");
  return Math.max(1, Math.round(numRuns * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

/** fast-check parameters: the seed, the scaled run count, and the assertion's own message in the report. */
export function fuzzParams<T>(seed: number, numRuns: number, extra: fc.Parameters<T> = {}): fc.Parameters<T> {
  return { seed, numRuns: fuzzRuns(numRuns), includeErrorInReport: true, ...extra };
}

/** mulberry32: bulk bytes and shuffles from one shrinkable integer, far cheaper than per-byte arbitraries. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seededBytes(seed: number, n: number): Buffer {
  const next = prng(seed);
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(next() * 256);
  return b;
}

export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const next = prng(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/** Atoms for UTF-8 text that survives XML: multi-byte, emoji, combining marks, BOM, markup look-alikes. */
export const XML_SAFE_TEXT_ATOMS = [
  "a",
  "b",
  "Z",
  "0",
  "9",
  " ",
  " ",
  "\t",
  "\n",
  "<",
  ">",
  "&",
  '"',
  "'",
  "]]>",
  "<![CDATA[",
  "<!--",
  "&amp;",
  "&#13;",
  "é",
  "ß",
  "中",
  "文",
  "😀",
  "🚀",
  "👩‍👩‍👧",
  "e\u0301",
  "\uFEFF",
  "\u2028",
  "\u0085",
  "\u{10FFFF}",
  "\uFFFD",
  '{"k":1}',
];
