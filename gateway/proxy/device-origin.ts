/** A device's httpTarget from the registry, parsed: where the pass-through connects, and the path it prefixes. */
export interface DeviceOrigin {
  /** scheme://host:port only: what the proxy library connects to (a URL object: the library parses a string again). */
  origin: URL;
  https: boolean;
  /** The registry's base path without trailing slashes (`/api` of `http://10.0.0.17:8080/api/`), or "". */
  pathPrefix: string;
}

/** Entries kept before the map starts over: well beyond the devices one instance serves between registry changes. */
const MAX_ORIGINS = 10_000;

/**
 * httpTargets parsed once each instead of on every request (a WHATWG URL parse, twice with the proxy
 * library's own, was a visible share of a pass-through request's CPU and a held request's memory). Bounded:
 * past MAX_ORIGINS the map is emptied and refilled by the requests that follow. A target that is not an
 * http(s) URL is remembered as such (undefined).
 */
export class DeviceOrigins {
  private readonly parsed = new Map<string, DeviceOrigin | null>();

  of(httpTarget: string): DeviceOrigin | undefined {
    let origin = this.parsed.get(httpTarget);
    if (origin === undefined) {
      origin = parseOrigin(httpTarget) ?? null;
      if (this.parsed.size >= MAX_ORIGINS) this.parsed.clear();
      this.parsed.set(httpTarget, origin);
    }
    return origin ?? undefined;
  }
}

function parseOrigin(httpTarget: string): DeviceOrigin | undefined {
  let url: URL;
  try {
    url = new URL(httpTarget);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return undefined;
  return { origin: new URL(url.origin), https: url.protocol === "https:", pathPrefix: url.pathname.replace(/\/+$/, "") };
}

/** The path the device sees: the registry's base path, then the resource, verbatim. */
export function devicePath(target: DeviceOrigin, resource: string): string {
  return target.pathPrefix + (resource.startsWith("/") ? resource : `/${resource}`);
}
