// One typed client over the gateway's admin API (README "Admin API", docs/admin-api.md): the base URL, the
// bearer token, and the gateway's JSON errors turned into GatewayApiError with their stable code.
import { redactUrl } from "../lib/env.js";
import type {
  ApiErrorBody,
  BulkAnswer,
  BulkRequest,
  DeviceEntry,
  DeviceFilter,
  DevicePage,
  MigrationSummary,
  Wave,
  WaveList,
  WaveRequest,
} from "./api-types.js";

/** The gateway answered with an error: its status, and the catalogue's code (README, "Errors"). */
export class GatewayApiError extends Error {
  override readonly name = "GatewayApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

/** No answer at all: the connection failed, or no answer came in time. */
export class GatewayUnreachable extends Error {
  override readonly name = "GatewayUnreachable";
}

/** An answer that is not what the API answers: another server at that URL, or a gateway of another version. */
export class UnexpectedAnswer extends Error {
  override readonly name = "UnexpectedAnswer";
}

export interface AdminClientOptions {
  /** e.g. `http://localhost:8080`; a path (behind a reverse proxy) is kept. */
  baseUrl: string;
  token: string;
  /** Bound on one request, answer included; a bulk call of 1000 devices is well within the default. */
  timeoutMs?: number;
  fetch?: typeof fetch;
}

const DEFAULT_TIMEOUT_MS = 60_000;

export class AdminClient {
  private readonly base: string;
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;

  constructor(private readonly opts: AdminClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, "");
    this.fetch = opts.fetch ?? fetch;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  async listDevices(query: DeviceFilter & { limit?: number; cursor?: string | null }): Promise<DevicePage> {
    const params = new URLSearchParams();
    if (query.transport !== undefined) params.set("transport", query.transport);
    if (query.online !== undefined) params.set("online", String(query.online));
    if (query.prefix !== undefined) params.set("prefix", query.prefix);
    if (query.limit !== undefined) params.set("limit", String(query.limit));
    if (query.cursor != null) params.set("cursor", query.cursor);
    const search = params.size > 0 ? `?${params.toString()}` : "";
    const page = await this.request<unknown>("GET", `/admin/devices${search}`);
    if (Array.isArray(page)) {
      // A gateway from before paged listing answers every entry as one array and ignores the filters.
      throw new UnexpectedAnswer("GET /admin/devices answered a JSON array: this gateway predates paged listing (docs/admin-api.md)");
    }
    return expect(page, isPage, "GET /admin/devices");
  }

  getDevice(id: string): Promise<DeviceEntry> {
    return this.request("GET", `/admin/devices/${encodeURIComponent(id)}`);
  }

  patchDevice(id: string, changes: Record<string, unknown>): Promise<DeviceEntry> {
    return this.request("PATCH", `/admin/devices/${encodeURIComponent(id)}`, changes);
  }

  async bulk(body: BulkRequest): Promise<BulkAnswer> {
    return expect(await this.request("POST", "/admin/devices/bulk", body), isBulkAnswer, "POST /admin/devices/bulk");
  }

  async migration(): Promise<MigrationSummary> {
    return expect(await this.request("GET", "/admin/migration"), isMigration, "GET /admin/migration");
  }

  async startWave(body: WaveRequest): Promise<Wave> {
    return expect(await this.request("POST", "/admin/waves", body), isWaveOrPlan, "POST /admin/waves");
  }

  async listWaves(): Promise<WaveList> {
    return expect(await this.request("GET", "/admin/waves"), isWaveList, "GET /admin/waves");
  }

  async getWave(id: string): Promise<Wave> {
    return expect(await this.request("GET", `/admin/waves/${encodeURIComponent(id)}`), isWave, "GET /admin/waves/{id}");
  }

  async rollbackWave(id: string): Promise<Wave> {
    return expect(await this.request("POST", `/admin/waves/${encodeURIComponent(id)}/rollback`), isWave, "POST /admin/waves/{id}/rollback");
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.opts.token}`, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    let text: string;
    try {
      res = await this.fetch(`${this.base}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        redirect: "manual",
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      throw new GatewayUnreachable(`cannot reach the gateway at ${redactUrl(this.base)}: ${reason(err, this.timeoutMs)}`, { cause: err });
    }
    if (!res.ok) throw errorOf(res.status, text);
    if (res.status === 204 || text === "") return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new UnexpectedAnswer(`the answer to ${method} ${path} is not JSON: is ${redactUrl(this.base)} the gateway?`);
    }
  }
}

/** The gateway's `{"error":{code,message,field}}`, or, from something else on the way (a proxy), the status. */
function errorOf(status: number, text: string): GatewayApiError {
  try {
    const parsed = JSON.parse(text) as { error?: Partial<ApiErrorBody> };
    const error = parsed.error;
    if (error && typeof error.code === "string") {
      return new GatewayApiError(status, error.code, typeof error.message === "string" ? error.message : "", error.field);
    }
  } catch {
    // not JSON: below
  }
  const snippet = text.replace(/\s+/g, " ").trim().slice(0, 200);
  return new GatewayApiError(status, `HTTP_${status}`, snippet === "" ? `status ${status} without a body` : snippet);
}

/** Node's fetch hides the socket's error code in `cause`: that code is what tells an operator what to check. */
function reason(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError")) return `no answer within ${timeoutMs} ms`;
  const cause = err instanceof Error ? (err.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause && typeof cause.code === "string") return cause.code;
  if (cause && typeof cause.message === "string") return cause.message;
  return err instanceof Error ? err.message : String(err);
}

// The few fields each command relies on, checked so that a surprising answer is one clear error line rather
// than a TypeError from deep inside a command.
type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const isCursor = (v: unknown): boolean => v === null || typeof v === "string";
const isPage = (v: unknown): boolean => isObject(v) && Array.isArray(v.devices) && isCursor(v.nextCursor);
const isBulkAnswer = (v: unknown): boolean =>
  isObject(v) &&
  Array.isArray(v.results) &&
  isCursor(v.nextCursor) &&
  ["matched", "changed", "unchanged", "failed"].every((k) => typeof v[k] === "number");
const isMigration = (v: unknown): boolean => isObject(v) && isObject(v.devices) && isObject(v.devices.byTransport);
const isWave = (v: unknown): boolean => isObject(v) && typeof v.id === "string" && typeof v.state === "string";
/** A wave, or a dry run's plan (no wave is made: no id, no state). */
const isWaveOrPlan = (v: unknown): boolean => isWave(v) || (isObject(v) && v.dryRun === true && Array.isArray(v.deviceIds));
const isWaveList = (v: unknown): boolean => isObject(v) && Array.isArray(v.waves) && v.waves.every(isWave);

function expect<T>(answer: unknown, check: (v: unknown) => boolean, what: string): T {
  if (!check(answer)) throw new UnexpectedAnswer(`the answer to ${what} is not what the admin API answers (docs/admin-api.md)`);
  return answer as T;
}
