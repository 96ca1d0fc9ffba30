/**
 * The W3C Trace Context fields (https://www.w3.org/TR/trace-context/): `traceparent` parsed and written, and
 * the pair as it travels in a header list. Pure functions, no OpenTelemetry types: the facade (tracing.ts)
 * turns a parsed parent into a span context.
 */

/** The two fields that carry a trace across a hop, as a header list holds them (lower-case names, §3.2 and §3.3). */
export interface TraceFields {
  traceparent: string;
  /** Vendor entries (§3.3), passed along as received; absent when there are none. */
  tracestate?: string;
}

export interface ParsedTraceparent {
  /** 32 lower-case hex digits, not all zero. */
  traceId: string;
  /** 16 lower-case hex digits, not all zero: the caller's span. */
  parentId: string;
  /** trace-flags (§3.2.2.5); bit 0 is `sampled`. */
  flags: number;
}

export const TRACEPARENT = "traceparent";
export const TRACESTATE = "tracestate";

const VERSION_00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** A later version (§3.2.4): the first four fields as version 00 has them, then, maybe, `-` and more. */
const LATER_VERSION = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE_ID = "0".repeat(32);
const ZERO_PARENT_ID = "0".repeat(16);
/**
 * §3.3.1.1 lets a vendor drop a tracestate longer than 512 characters rather than carry it; a device's HTTP
 * server gets this field among its request's headers, so it stays bounded.
 */
export const MAX_TRACESTATE_LENGTH = 512;

/**
 * A `traceparent` value (§3.2), or undefined when it is none a receiver may continue: a version other
 * than 00 is read by its first four fields (§3.2.4), version `ff` is invalid, and so is an all-zero trace
 * id or parent id. Upper-case hex is invalid (§3.2.2: lower-case only). Several `traceparent` fields joined
 * into one value (node joins repeats with ", ") do not parse: §3.2 makes them invalid too.
 */
export function parseTraceparent(value: string | undefined): ParsedTraceparent | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  let match: RegExpExecArray | null = VERSION_00.exec(text);
  let fields: [string, string, string] | undefined;
  if (match) fields = [match[1] as string, match[2] as string, match[3] as string];
  else {
    match = LATER_VERSION.exec(text);
    if (!match || match[1] === "00" || match[1] === "ff") return undefined;
    fields = [match[2] as string, match[3] as string, match[4] as string];
  }
  const [traceId, parentId, flags] = fields;
  if (traceId === ZERO_TRACE_ID || parentId === ZERO_PARENT_ID) return undefined;
  // §3.2.4: a later version's flags are read as version 00 defines them (only `sampled` is known).
  return { traceId, parentId, flags: parseInt(flags, 16) };
}

/** A version 00 `traceparent` (§3.2) naming span `spanId` of trace `traceId` as the parent. */
export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${(flags & 0xff).toString(16).padStart(2, "0")}`;
}

/** A received `tracestate`, or undefined when absent, empty or longer than MAX_TRACESTATE_LENGTH. */
export function boundedTracestate(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  return text === "" || text.length > MAX_TRACESTATE_LENGTH ? undefined : text;
}

/** The trace fields of a header list (names in any case, as XEP-0131 and HTTP allow); repeats of tracestate joined (§3.3.1.1). */
export function traceFieldsOf(headers: ReadonlyArray<readonly [string, string]>): Partial<TraceFields> {
  let traceparent: string | undefined;
  let parents = 0;
  let tracestate: string | undefined;
  for (const [name, value] of headers) {
    if (name.length !== 11 && name.length !== 10) continue;
    const lower = name.toLowerCase();
    if (lower === TRACEPARENT) {
      traceparent = value;
      parents++;
    } else if (lower === TRACESTATE) tracestate = tracestate === undefined ? value : `${tracestate},${value}`;
  }
  // §3.2: more than one traceparent field is an invalid one.
  if (parents !== 1) return {};
  return tracestate === undefined ? { traceparent: traceparent } : { traceparent: traceparent, tracestate };
}

/**
 * A header list for the next hop: any `traceparent` and `tracestate` it had (the caller's, in any case)
 * dropped, and ours appended. The list is fresh; the one given is not changed.
 */
export function withTraceFields(headers: ReadonlyArray<readonly [string, string]>, fields: TraceFields): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of headers) if (!isTraceField(name)) out.push([name, value]);
  out.push([TRACEPARENT, fields.traceparent]);
  if (fields.tracestate !== undefined) out.push([TRACESTATE, fields.tracestate]);
  return out;
}

/**
 * The same for a header object (node's and http-proxy-3's shape), changed in place: the caller's trace fields,
 * under any spelling, replaced by ours.
 */
export function setTraceFields(headers: Record<string, string | string[] | undefined>, fields: TraceFields): void {
  for (const name of Object.keys(headers)) if (isTraceField(name)) delete headers[name];
  headers[TRACEPARENT] = fields.traceparent;
  if (fields.tracestate !== undefined) headers[TRACESTATE] = fields.tracestate;
}

/** Whether a header field name is one of the two trace fields, in any case. */
export function isTraceField(name: string): boolean {
  if (name.length !== 11 && name.length !== 10) return false;
  const lower = name.toLowerCase();
  return lower === TRACEPARENT || lower === TRACESTATE;
}
