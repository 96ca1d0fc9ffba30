import type { IncomingHttpHeaders } from "node:http";
import { isIPv6 } from "node:net";
import { isHostName, normalizeLegacyAddress } from "../../lib/legacy-address.js";
import { GatewayError } from "../errors.js";
import { canonicalDeviceId, canonicalOrAsGiven, DEVICE_ID_RULE } from "../registry/device-id.js";
import { parseDevicePath, type DeviceAddress } from "./device-address.js";

export type AddressingMode = "path" | "host" | "proxy";

/** A device request: which device, the path and query it sees, and how the client named the device. */
export interface AddressedDevice extends DeviceAddress {
  mode: AddressingMode;
}

/** What addressing reads of a request (an Express Request has all of it). */
export interface AddressedRequest {
  method: string;
  /** The raw request target, exactly as received. */
  url: string;
  /** Express's copy of the raw target, kept when a mounted router rewrites `url`; preferred when present. */
  originalUrl?: string;
  headers: IncomingHttpHeaders;
}

/** The registry's forward-proxy index (RedisDeviceRegistry has it). */
export interface LegacyAddressIndex {
  /** The device that registered this `host:port`, in any spelling normalizeLegacyAddress accepts. */
  findByLegacyAddress(hostPort: string): Promise<{ id: string } | undefined>;
}

export interface AddressingOptions {
  /** GATEWAY_DEVICE_HOST_SUFFIX: `Host: {id}.{suffix}` names device `{id}`; absent: no Host addressing. */
  hostSuffix?: string | undefined;
}

/**
 * RFC 9112 §3 recommends at least 8000 octets of request line; a target longer than this is not carried to a
 * device (it travels in one XMPP attribute). Node refuses request heads over 16 KiB (431) before we see them.
 */
export const MAX_TARGET_LENGTH = 8192;

/** Devices carry these; the `Allow` of a 405 for CONNECT (RFC 9110 §15.5.6). */
export const DEVICE_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE";

/** RFC 9112 §3.2.2 absolute-form: `scheme://authority` then path, query (and whatever else the client sent). */
const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/s;
/** Something that starts like an absolute URI (a scheme and a colon) but has no `//authority`. */
const SCHEME_ONLY = /^[A-Za-z][A-Za-z0-9+.-]*:/;
/** RFC 3986 §3.2.2: `[IP-literal]` or reg-name / IPv4, then an optional `:port` (digits, possibly none). */
const AUTHORITY = /^(\[[^\]]*\]|[^:[\]]*)(?::(\d*))?$/;
/** RFC 3986 reg-name: unreserved, pct-encoded and sub-delims characters. */
const REG_NAME = /^[A-Za-z0-9._~!$&'()*+,;=%-]+$/;
const HTTP_DEFAULT_PORT = 80;

/**
 * Which device a request is for (README, "Device requests"), from the raw request target and the Host header; the id is
 * always the canonical one (canonicalDeviceId: lower case), however the client spelled it:
 *
 * - **forward proxy**: an absolute-form target (`GET http://10.0.0.17:8080/TEMPERATURE/`) names the device
 *   that registered `10.0.0.17:8080` as its `legacyAddress`. The URI's host is only ever a key into the
 *   registry: the gateway never connects to it, and an address no device owns is 403 `GW_NOT_A_DEVICE`.
 *   When the URI's host is `{id}.{hostSuffix}`, Host addressing applies to it instead.
 * - **Host**: `Host: {id}.{hostSuffix}` (port ignored, case-insensitive) names device `{id}`, which sees the
 *   target as sent. A Host under the suffix whose label is not a device id is 400 `GW_BAD_DEVICE_ID`.
 * - **path**: `/devices/{id}/{rest}` (parseDevicePath, unchanged).
 *
 * Anything else is not a device request (undefined): the gateway's own routes answer it. `CONNECT` is 405
 * whatever its target: the gateway is never an open proxy. Pure apart from the one registry lookup.
 */
export class DeviceAddressing {
  private readonly hostSuffix: string | undefined;

  constructor(
    opts: AddressingOptions,
    private readonly deps: { registry: LegacyAddressIndex },
  ) {
    const suffix = opts.hostSuffix?.toLowerCase().replace(/\.$/, "");
    if (suffix !== undefined && !isHostName(suffix)) throw new Error(`host suffix ${JSON.stringify(opts.hostSuffix)} is not a DNS name`);
    this.hostSuffix = suffix;
  }

  async address(req: AddressedRequest): Promise<AddressedDevice | undefined> {
    if (req.method === "CONNECT") throw connectRefused();
    const target = req.originalUrl ?? req.url;

    const absolute = ABSOLUTE_FORM.exec(target);
    if (absolute) {
      const [, scheme = "", authority = "", rest = ""] = absolute;
      return this.absoluteForm(target, scheme, authority, rest);
    }

    if (target.startsWith("/")) {
      // Host addressing first: the device sees the whole target, `/devices/…` included.
      const hostId = this.deviceIdOfHost(hostNameOf(req.headers.host));
      if (hostId !== undefined) return { deviceId: hostId, resource: carried(target), mode: "host" };
      if (isDevicePath(target)) return { ...parseDevicePath(carried(target)), mode: "path" };
      return undefined;
    }

    // Asterisk-form (`OPTIONS *`), or a target Node let through that is no URI form at all.
    if (this.deviceIdOfHost(hostNameOf(req.headers.host)) !== undefined) {
      throw badTarget(`request target ${show(target)} cannot be carried to a device: a device sees an origin-form path (/…)`);
    }
    if (target === "*") return undefined;
    if (SCHEME_ONLY.test(target)) throw badTarget(`absolute URI ${show(target)} has no //authority`);
    throw badTarget(`request target ${show(target)} is neither a path (/…) nor an absolute URI (http://host:port/…)`);
  }

  private async absoluteForm(target: string, scheme: string, authority: string, rest: string): Promise<AddressedDevice> {
    carried(target);
    if (scheme.toLowerCase() !== "http") {
      // 403 GW_NOT_A_DEVICE, not 400: the request is well-formed HTTP (RFC 9112 §3.2.2 admits any absolute
      // URI), so 400 would wrongly tell the client its syntax is broken, and GW_BAD_DEVICE_ID names a device
      // id the request does not have. What is refused is proxying to that target: devices are registered
      // by their plain `host:port` (legacy clients call http://), and the gateway cannot speak TLS as the
      // device, nor reach anything else. One answer for every non-device target, decided before any
      // lookup, also tells a client probing for an open proxy nothing about what is registered.
      throw new GatewayError("GW_NOT_A_DEVICE", {
        message: `${show(`${scheme.toLowerCase()}://`)} targets are not carried: devices are reached by their legacy http:// address only, and the gateway is not an open proxy`,
      });
    }
    if (authority.includes("@")) {
      // RFC 9110 §4.2.4: user info in an http URI is deprecated and to be treated as an error.
      throw badTarget("absolute URI with user info (user@host) is refused (RFC 9110 §4.2.4)");
    }
    const match = AUTHORITY.exec(authority);
    if (!match) throw badTarget(`authority ${show(authority)} of the absolute URI is not host[:port]`);
    const [, host = "", portText = ""] = match;
    if (host === "") throw badTarget("absolute URI without a host");
    if (host.startsWith("[")) {
      if (!isIPv6(host.slice(1, -1))) throw badTarget(`${show(host)} is not an IPv6 address`);
    } else if (!REG_NAME.test(host)) {
      throw badTarget(`host ${show(host)} of the absolute URI is not a host name or IP address`);
    }
    const port = portText === "" ? HTTP_DEFAULT_PORT : Number(portText);
    if (portText.length > 10 || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw badTarget(`port ${show(portText)} of the absolute URI must be 1-65535`);
    }
    const resource = rest.startsWith("/") ? rest : `/${rest}`; // `http://h:80` and `http://h:80?q` mean `/` (RFC 9112 §3.2.2)

    // RFC 9112 §3.2.2: with an absolute-form target the URI's authority is the request's host; Host is ignored.
    const hostId = this.deviceIdOfHost(host.startsWith("[") ? undefined : host);
    if (hostId !== undefined) return { deviceId: hostId, resource, mode: "host" };

    const legacyAddress = normalizeLegacyAddress(`${host}:${port}`);
    const owner = legacyAddress === undefined ? undefined : await this.deps.registry.findByLegacyAddress(legacyAddress);
    if (!owner) {
      throw new GatewayError("GW_NOT_A_DEVICE", {
        message: `${show(`http://${host}:${port}`)} is not a registered device's address, and the gateway is not an open proxy`,
      });
    }
    // An entry written before ids were canonical may still spell its id with capitals.
    return { deviceId: canonicalOrAsGiven(owner.id), resource, mode: "proxy" };
  }

  /** The device id `host` names under the suffix; undefined when it is not under it (or is the suffix itself). */
  private deviceIdOfHost(host: string | undefined): string | undefined {
    if (this.hostSuffix === undefined || host === undefined) return undefined;
    const name = host.endsWith(".") ? host.slice(0, -1) : host; // the absolute (FQDN) spelling
    if (!name.toLowerCase().endsWith(`.${this.hostSuffix}`)) return undefined;
    const label = name.slice(0, name.length - this.hostSuffix.length - 1);
    const deviceId = canonicalDeviceId(label);
    if (deviceId === undefined) {
      throw new GatewayError("GW_BAD_DEVICE_ID", {
        message: `host ${show(name)} is under ${this.hostSuffix}, but ${show(label)} is not a device id: ${DEVICE_ID_RULE}`,
      });
    }
    return deviceId;
  }
}

/**
 * 405 for CONNECT, whatever its target: the gateway is never an open proxy. (Node gives CONNECT to the
 * server's `connect` event, not to the app: see connect.ts; this covers an app reached some other way.)
 */
export function connectRefused(): GatewayError {
  return new GatewayError("GW_METHOD_NOT_ALLOWED", {
    message: "CONNECT is refused: the gateway is not an open proxy, it carries HTTP requests to registered devices only",
  });
}

/** The `/devices` prefix the path route served: `/devices`, `/devices/…` and `/devices?…` (the last two refused by parseDevicePath when malformed). */
function isDevicePath(target: string): boolean {
  return target === "/devices" || target.startsWith("/devices/") || target.startsWith("/devices?");
}

/** The host name of a Host header (port stripped); undefined for none, an IP literal or something unparseable. */
function hostNameOf(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^([^:[\]]+)(?::\d*)?$/.exec(header.trim());
  return match?.[1];
}

/** The target, when it is short enough to be carried to a device. */
function carried(target: string): string {
  if (target.length > MAX_TARGET_LENGTH) {
    throw badTarget(`request target is ${target.length} characters long; at most ${MAX_TARGET_LENGTH} are carried to a device`);
  }
  return target;
}

/**
 * 400 GW_BAD_DEVICE_ID: a request addressed to a device whose address cannot be read, as parseDevicePath
 * answers a malformed `/devices/…` path. The message says what is wrong.
 */
function badTarget(message: string): GatewayError {
  return new GatewayError("GW_BAD_DEVICE_ID", { message });
}

/** Client input in a message: quoted, and cut short. */
function show(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}
