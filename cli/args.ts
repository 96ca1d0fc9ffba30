// The command line of `gatewayctl` (docs/admin-api.md, "The command-line client") read into one typed
// command. Everything a command needs is checked here, before any request: a typo is a usage error (exit 2)
// and never reaches the gateway as a wider request than meant.
import { parseArgs } from "node:util";
import type { DeviceFilter, WaveRequest } from "./api-types.js";

/** A command line that cannot be run: printed with the usage, exit status 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(
    message: string,
    /** False where the usage would only bury the message (a refused --token). */
    readonly showUsage = true,
  ) {
    super(message);
  }
}

export type Command =
  | { kind: "help" }
  | { kind: "list"; filter: DeviceFilter; limit?: number; cursor?: string; all: boolean }
  | { kind: "get"; id: string }
  | { kind: "set"; id: string; changes: Record<string, unknown> }
  | { kind: "cutover"; ids?: string[]; filter?: DeviceFilter; to: string; dryRun: boolean; limit?: number }
  | { kind: "wave-start"; request: WaveRequest }
  | { kind: "wave-list" }
  | { kind: "wave-get"; id: string; watch: boolean; intervalMs: number }
  | { kind: "wave-rollback"; id: string }
  | { kind: "status" };

export interface Invocation {
  command: Command;
  /** `--url`: the gateway's base URL, over GATEWAY_URL. */
  url?: string;
  json: boolean;
}

export const TRANSPORTS = ["xmpp", "http", "shadow"] as const;
export const DEFAULT_WATCH_INTERVAL_MS = 1000;

// One table of every option: parseArgs must know which options take a value before it can tell the
// positionals apart. Which command accepts which is checked afterwards (ACCEPTS).
const OPTIONS = {
  url: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  transport: { type: "string" },
  prefix: { type: "string" },
  online: { type: "string" },
  limit: { type: "string" },
  cursor: { type: "string" },
  all: { type: "boolean" },
  to: { type: "string" },
  "dry-run": { type: "boolean" },
  percent: { type: "string" },
  window: { type: "string" },
  "max-error-increase": { type: "string" },
  "min-requests": { type: "string" },
  watch: { type: "boolean" },
  interval: { type: "string" },
} as const;

type OptionName = keyof typeof OPTIONS;
type Values = { [K in OptionName]?: (typeof OPTIONS)[K]["type"] extends "boolean" ? boolean : string };

const COMMON: readonly OptionName[] = ["url", "json", "help"];
const ACCEPTS: Record<string, readonly OptionName[]> = {
  list: ["transport", "prefix", "online", "limit", "cursor", "all"],
  get: [],
  set: [],
  cutover: ["transport", "prefix", "online", "limit", "to", "dry-run"],
  "wave start": ["percent", "prefix", "online", "window", "max-error-increase", "min-requests", "dry-run"],
  "wave list": [],
  "wave get": ["watch", "interval"],
  "wave rollback": [],
  status: [],
};

export const TOKEN_REFUSED =
  "--token is refused: a command line is visible to every user of the machine (ps, /proc). " +
  "Set GATEWAY_ADMIN_TOKEN, or GATEWAY_ADMIN_TOKEN_FILE naming a file that holds the token.";

/** Reads `argv` (without node and the script) into an invocation; throws UsageError. */
export function parseInvocation(argv: readonly string[]): Invocation {
  const end = argv.indexOf("--");
  for (const arg of end < 0 ? argv : argv.slice(0, end)) {
    if (arg === "--token" || arg.startsWith("--token=")) throw new UsageError(TOKEN_REFUSED, false);
  }
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const json = values.json === true;
  const url = values.url;
  const base = { json, ...(url === undefined ? {} : { url }) };
  if (values.help === true || positionals.length === 0 || (positionals[0] === "help" && positionals.length === 1)) {
    return { ...base, command: { kind: "help" } };
  }
  const [group, name, ...rest] = positionals;
  if (group !== "devices") throw new UsageError(`unknown command ${JSON.stringify(group)}: commands start with "devices"`);
  if (name === undefined) throw new UsageError("devices: a command is missing (list, get, set, cutover, wave, status)");
  if (name === "wave") {
    const [sub, ...args] = rest;
    if (sub === undefined) throw new UsageError("devices wave: a command is missing (start, list, get, rollback)");
    return { ...base, command: waveCommand(sub, args, values) };
  }
  return { ...base, command: deviceCommand(name, rest, values) };
}

function deviceCommand(name: string, args: string[], values: Values): Command {
  switch (name) {
    case "list": {
      accept("list", values);
      noArguments("list", args);
      const limit = wholeNumber(values, "limit");
      return {
        kind: "list",
        filter: filterOf(values),
        all: values.all === true,
        ...(limit === undefined ? {} : { limit }),
        ...(values.cursor === undefined ? {} : { cursor: values.cursor }),
      };
    }
    case "get":
      accept("get", values);
      return { kind: "get", id: oneId("get", args) };
    case "set": {
      accept("set", values);
      const [id, ...assignments] = args;
      if (id === undefined) throw new UsageError("devices set: a device id is missing");
      if (assignments.length === 0) throw new UsageError("devices set: no field=value to set");
      return { kind: "set", id, changes: changesOf(assignments) };
    }
    case "cutover":
      return cutover(args, values);
    case "status":
      accept("status", values);
      noArguments("status", args);
      return { kind: "status" };
    default:
      throw new UsageError(`unknown command "devices ${name}"`);
  }
}

function cutover(args: string[], values: Values): Command {
  accept("cutover", values);
  const to = values.to ?? "xmpp";
  if (!(TRANSPORTS as readonly string[]).includes(to)) throw new UsageError(`--to must be one of ${TRANSPORTS.join(", ")}`);
  const filter = filterOf(values);
  const hasFilter = Object.keys(filter).length > 0;
  const limit = wholeNumber(values, "limit");
  const dryRun = values["dry-run"] === true;
  if (args.length > 0) {
    if (hasFilter) throw new UsageError("devices cutover: give device ids or a filter (--transport, --prefix, --online), not both");
    if (limit !== undefined) throw new UsageError("devices cutover: --limit applies to a filter, not to device ids");
    return { kind: "cutover", ids: [...new Set(args)], to, dryRun };
  }
  // A cutover of the whole fleet is never what an empty command line meant.
  if (!hasFilter) throw new UsageError("devices cutover: give device ids, or a filter (--transport, --prefix, --online)");
  return { kind: "cutover", filter, to, dryRun, ...(limit === undefined ? {} : { limit }) };
}

function waveCommand(sub: string, args: string[], values: Values): Command {
  switch (sub) {
    case "start":
      return waveStart(args, values);
    case "list":
      accept("wave list", values);
      noArguments("wave list", args);
      return { kind: "wave-list" };
    case "get": {
      accept("wave get", values);
      const intervalMs = duration(values, "interval") ?? DEFAULT_WATCH_INTERVAL_MS;
      if (values.interval !== undefined && values.watch !== true) throw new UsageError("devices wave get: --interval goes with --watch");
      if (intervalMs < 100) throw new UsageError("--interval must be at least 100ms");
      return { kind: "wave-get", id: oneId("wave get", args), watch: values.watch === true, intervalMs };
    }
    case "rollback":
      accept("wave rollback", values);
      return { kind: "wave-rollback", id: oneId("wave rollback", args) };
    default:
      throw new UsageError(`unknown command "devices wave ${sub}"`);
  }
}

function waveStart(args: string[], values: Values): Command {
  accept("wave start", values);
  const percent = decimal(values, "percent");
  const request: WaveRequest = {};
  if (args.length > 0) {
    if (percent !== undefined) throw new UsageError("devices wave start: give device ids or --percent, not both");
    if (values.prefix !== undefined || values.online !== undefined)
      throw new UsageError("devices wave start: --prefix and --online choose among candidates for --percent, not among device ids");
    request.ids = [...new Set(args)];
  } else {
    if (percent === undefined) throw new UsageError("devices wave start: give --percent (or device ids)");
    request.percent = percent;
    const filter = filterOf(values);
    if (Object.keys(filter).length > 0) request.filter = filter;
  }
  const windowMs = duration(values, "window");
  if (windowMs !== undefined) request.windowMs = windowMs;
  const increase = decimal(values, "max-error-increase");
  if (increase !== undefined) request.maxErrorRateIncrease = increase;
  const minRequests = wholeNumber(values, "min-requests");
  if (minRequests !== undefined) request.minRequests = minRequests;
  if (values["dry-run"] === true) request.dryRun = true;
  return { kind: "wave-start", request };
}

function accept(command: string, values: Values): void {
  const allowed = new Set([...COMMON, ...(ACCEPTS[command] ?? [])]);
  for (const [name, value] of Object.entries(values)) {
    if (value !== undefined && !allowed.has(name as OptionName)) throw new UsageError(`devices ${command}: --${name} does not apply here`);
  }
}

function noArguments(command: string, args: string[]): void {
  if (args.length > 0) throw new UsageError(`devices ${command}: unexpected argument ${JSON.stringify(args[0])}`);
}

function oneId(command: string, args: string[]): string {
  const [id, extra] = args;
  if (id === undefined) throw new UsageError(`devices ${command}: an id is missing`);
  if (extra !== undefined) throw new UsageError(`devices ${command}: one id only (unexpected ${JSON.stringify(extra)})`);
  return id;
}

/** The listing's filter as given; the gateway checks the values (a bad one is its GW_INVALID_FIELD). */
function filterOf(values: Values): DeviceFilter {
  const filter: DeviceFilter = {};
  if (values.transport !== undefined) filter.transport = values.transport;
  if (values.prefix !== undefined) filter.prefix = values.prefix;
  if (values.online !== undefined) {
    if (values.online !== "true" && values.online !== "false") throw new UsageError("--online must be true or false");
    filter.online = values.online === "true";
  }
  return filter;
}

function wholeNumber(values: Values, name: "limit" | "min-requests"): number | undefined {
  const text = values[name];
  if (text === undefined) return undefined;
  if (!/^\d{1,15}$/.test(text) || Number(text) === 0) throw new UsageError(`--${name} must be a whole number above 0`);
  return Number(text);
}

function decimal(values: Values, name: "percent" | "max-error-increase"): number | undefined {
  const text = values[name];
  if (text === undefined) return undefined;
  if (!/^\d{1,15}(\.\d{1,15})?$/.test(text)) throw new UsageError(`--${name} must be a number such as 10 or 0.05`);
  return Number(text);
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `30s`, `10m`, `1.5h` in milliseconds; a unit is required, so `--window 600` is not a guess. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d{1,9}(?:\.\d{1,6})?)(ms|s|m|h)$/.exec(text);
  if (!match) return undefined;
  return Math.round(Number(match[1]) * (UNIT_MS[match[2] ?? ""] ?? Number.NaN));
}

function duration(values: Values, name: "window" | "interval"): number | undefined {
  const text = values[name];
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined) throw new UsageError(`--${name} must be a duration with its unit: 500ms, 30s, 10m, 1h`);
  return ms;
}

const NUMERIC_FIELDS = new Set(["timeoutMs", "maxInFlight"]);
const BOOLEAN_FIELDS = new Set(["acceptAnnouncedAddress"]);

/**
 * `field=value` pairs into a PATCH body. `null` removes an optional field (as PATCH does); numbers and booleans
 * are sent as such for the fields that hold them, anything else as text: the gateway checks every value and
 * names the field it refuses.
 */
export function changesOf(assignments: readonly string[]): Record<string, unknown> {
  const changes = new Map<string, unknown>();
  for (const assignment of assignments) {
    const eq = assignment.indexOf("=");
    if (eq <= 0) throw new UsageError(`devices set: ${JSON.stringify(assignment)} is not field=value`);
    const field = assignment.slice(0, eq);
    const text = assignment.slice(eq + 1);
    if (changes.has(field)) throw new UsageError(`devices set: ${field} is given twice`);
    changes.set(field, valueOf(field, text));
  }
  // Object.fromEntries defines own properties: a "__proto__" field stays a field (and the gateway refuses it).
  return Object.fromEntries(changes);
}

function valueOf(field: string, text: string): unknown {
  if (text === "null") return null;
  if (NUMERIC_FIELDS.has(field) && /^-?\d{1,15}$/.test(text)) return Number(text);
  if (BOOLEAN_FIELDS.has(field) && (text === "true" || text === "false")) return text === "true";
  return text;
}
