import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import net from "node:net";
import tls, { type ConnectionOptions, type TLSSocket } from "node:tls";
import type { Element } from "@xmpp/xml";
import type { XmlFactory } from "../../lib/xmpp/elements.js";
import { hasDirectTlsEntry, hasSrvEntry } from "./servers.js";

/**
 * `required`: TLS before anything else, with a verified certificate: STARTTLS (RFC 6120 §5) on `xmpp://`,
 * TLS from the first byte (XEP-0368) on `xmpps://`; never plain text. `off`: plain text, `xmpp://` only.
 */
export type TlsMode = "required" | "off";
export const TLS_MODES: readonly TlsMode[] = ["required", "off"];

export interface AgentTlsOptions {
  /** Absent: `defaultTlsMode(service, ca !== undefined)`. */
  mode?: TlsMode;
  /**
   * PEM certificates to trust instead of Node's bundled roots (a private CA, or the server's own
   * certificate). Absent: Node's roots, plus NODE_EXTRA_CA_CERTS when the process was started with it.
   */
  ca?: string;
}

const NS_STREAMS = "http://etherx.jabber.org/streams";
const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

/** Why the agent would not, or could not, secure its connection. */
export class TlsError extends Error {
  override readonly name = "TlsError";
  constructor(
    message: string,
    readonly code?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/**
 * 127.0.0.0/8, ::1 (in any spelling, IPv4-mapped included) and `localhost` (RFC 6761 §6.3): addresses whose
 * traffic never leaves the host.
 */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  if (host === "localhost" || host === "localhost.") return true;
  const family = net.isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 6 ? "ipv6" : "ipv4");
}

/**
 * Secure unless it cannot matter: plain text only for an `xmpp://` service on loopback when no CA was
 * given (a CA file says the operator wants TLS). Everything else requires TLS.
 */
export function defaultTlsMode(service: string, hasCa = false): TlsMode {
  let url: URL;
  try {
    url = new URL(service);
  } catch {
    return "required";
  }
  return url.protocol === "xmpp:" && isLoopbackHost(url.hostname) && !hasCa ? "off" : "required";
}

/** The certificates of a PEM file, checked one by one; throws a one-line reason. */
export function readCaFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new Error(`cannot be read: ${(err as Error).message}`, { cause: err });
  }
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error("holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
  blocks.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      throw new Error(`certificate ${i + 1} cannot be parsed: ${(err as Error).message}`, { cause: err });
    }
  });
  return `${blocks.join("\n")}\n`;
}

/**
 * The socket xmpp.js reads and writes once TLS is up: a Node TLSSocket behind the small interface xmpp.js
 * expects of a socket (that of `@xmpp/tls`), plus `setEncoding` and `destroy`, which the supervisor uses
 * (UTF-8 decoded across reads, which TLS records split as readily as TCP; a hung attempt abandoned).
 */
class SecureSocket extends EventEmitter {
  /** What xmpp.js's `isSecure()` reads: SASL PLAIN and the stream's `from` are then allowed (RFC 6120 §4.7.1). */
  readonly secure = true;
  private socket: TLSSocket | undefined;
  private encoding: BufferEncoding | undefined;

  constructor(
    private readonly options: ConnectionOptions,
    private readonly domain: string,
  ) {
    super();
  }

  get protocol(): string | undefined {
    return this.socket?.getProtocol() ?? undefined;
  }

  /** Direct TLS (XEP-0368): xmpp.js calls this with the service's host and port, and waits for `connect`. */
  connect(params: { host: string; port: number }): void {
    // ALPN "xmpp-client" (XEP-0368), so a TLS port shared with other protocols routes us to XMPP.
    const socket = tls.connect({ ...this.options, ...params, ALPNProtocols: ["xmpp-client"] });
    this.attach(socket);
    socket.once("secureConnect", () => this.emit("connect"));
  }

  /**
   * STARTTLS (RFC 6120 §5.4.3.3): TLS over the connected plain socket, after the server's `<proceed/>`.
   * Resolves once the certificate is verified; xmpp.js only sees this socket after that.
   */
  upgrade(plain: net.Socket): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ ...this.options, socket: plain });
      const fail = (err: Error) => reject(this.explain(err));
      socket.on("error", fail);
      socket.once("secureConnect", () => {
        socket.off("error", fail);
        this.attach(socket);
        resolve();
      });
    });
  }

  private attach(socket: TLSSocket): void {
    this.socket = socket;
    if (this.encoding) socket.setEncoding(this.encoding);
    socket.on("data", (data: Buffer | string) => this.emit("data", data));
    socket.on("error", (err: Error) => {
      // Between the end of a STARTTLS handshake and xmpp.js taking this socket nobody listens here; xmpp.js
      // still hears the close that follows, through the plain socket beneath.
      if (this.listenerCount("error") > 0) this.emit("error", socket.authorized ? err : this.explain(err));
    });
    socket.on("close", (hadError: boolean) => this.emit("close", hadError));
  }

  /** Certificate failures say which server was refused and why (OpenSSL's verify code), nothing secret. */
  private explain(err: Error & { code?: string; syscall?: string }): Error {
    if (err.syscall !== undefined) return err; // a TCP failure, not a TLS one
    const code = err.code ?? "TLS_ERROR";
    return new TlsError(`TLS with ${this.domain} failed, not connecting: ${err.message} (${code})`, code, { cause: err });
  }

  setEncoding(encoding: BufferEncoding): this {
    this.encoding = encoding;
    this.socket?.setEncoding(encoding);
    return this;
  }

  write(data: string, callback?: (err?: Error | null) => void): void {
    if (!this.socket) throw new Error("TLS socket not connected");
    this.socket.write(data, callback);
  }

  end(): void {
    this.socket?.end();
  }

  destroy(): void {
    this.socket?.destroy();
  }
}

/** A transport class of xmpp.js (`@xmpp/tcp`, `@xmpp/tls`, `@xmpp/websocket`), as far as this module uses it. */
interface TransportMembers {
  socketParameters(service: string): unknown;
  Socket: unknown;
}
type Transport = { new (...args: never[]): TransportMembers; prototype: TransportMembers };

/**
 * What TLS handling needs of an `@xmpp/client` 0.14 entity: the same members the library's own
 * `@xmpp/starttls` uses (`_attachSocket`, `restart`), and its list of transports.
 */
export interface TlsEntity extends EventEmitter {
  socket: unknown;
  transports: Transport[];
  isSecure(): boolean;
  sendReceive(element: Element, timeout?: number): Promise<Element>;
  restart(): Promise<unknown>;
  _attachSocket(socket: unknown): void;
}

/**
 * Secures an `@xmpp/client` entity's c2s connection (RFC 7590: TLS in XMPP). The library's own STARTTLS
 * upgrades only when the server offers it, trusts only Node's default roots, goes on in plain text when
 * the server offers nothing, and takes no TLS options. So the agent negotiates STARTTLS itself, ahead of
 * the library: it sees each stream's features first, and while the socket is plain it passes none of them
 * on, since nothing else may be negotiated before TLS (RFC 6120 §5.3.1) and the features offered after TLS
 * replace them (§5.4.3.3). The server certificate must chain to a trusted root and name the XMPP domain
 * (RFC 6120 §13.7, RFC 6125); there is no switch to skip that, and NODE_TLS_REJECT_UNAUTHORIZED does not
 * turn it off.
 */
export class ClientTls {
  readonly mode: TlsMode;
  private readonly Socket: new () => SecureSocket;

  constructor(
    private readonly entity: TlsEntity,
    private readonly xml: XmlFactory<Element>,
    opts: { service: string; domain: string; tls?: AgentTlsOptions },
  ) {
    // A list of servers (servers.ts): TLS may be left off only when every one of them allows it.
    const services = opts.service.split(",").map((s) => s.trim());
    this.mode = opts.tls?.mode ?? (services.every((s) => defaultTlsMode(s, opts.tls?.ca !== undefined) === "off") ? "off" : "required");
    if (hasDirectTlsEntry(opts.service) && this.mode === "off")
      throw new TlsError(`TLS mode "off" needs xmpp:// services: ${opts.service} is TLS from the first byte (XEP-0368)`);
    // An SRV lookup may find xmpps-client servers too, unless TLS is off (then it asks for xmpp-client only).
    const direct = hasDirectTlsEntry(opts.service) || (hasSrvEntry(opts.service) && this.mode !== "off");
    const domain = opts.domain;
    const options: ConnectionOptions = {
      ...(opts.tls?.ca !== undefined ? { ca: opts.tls.ca } : {}),
      // SNI lets a server hosting several domains pick this one's certificate; an IP address is not a
      // server name (RFC 6066 §3).
      ...(net.isIP(domain) ? {} : { servername: domain }),
      // The reference identity is the XMPP domain, not the host connected to (RFC 6125, RFC 7590; for
      // direct TLS, XEP-0368).
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(domain, cert),
      rejectUnauthorized: true,
      minVersion: "TLSv1.2",
    };
    this.Socket = class extends SecureSocket {
      constructor() {
        super(options, domain);
      }
    };
    if (direct) this.useForDirectTls(this.Socket);
    entity.prependListener("element", (element: Element) => this.onElement(element));
  }

  /** The negotiated TLS version (e.g. `TLSv1.3`), or undefined while the connection is not encrypted. */
  get protocol(): string | undefined {
    const socket = this.entity.socket;
    return socket instanceof SecureSocket ? socket.protocol : undefined;
  }

  /** xmpps:// connects through `@xmpp/tls`'s transport, with this connection's socket in place of its own. */
  private useForDirectTls(Socket: new () => SecureSocket): void {
    const transports = this.entity.transports;
    const i = transports.findIndex((T) => {
      try {
        return T.prototype.socketParameters("xmpps://localhost") !== undefined;
      } catch {
        return false;
      }
    });
    const Base = transports[i];
    if (!Base) throw new TlsError("no direct TLS transport in @xmpp/client");
    class DirectTls extends Base {}
    Object.defineProperty(DirectTls.prototype, "Socket", { value: Socket });
    transports[i] = DirectTls;
  }

  private onElement(element: Element): void {
    if (!element.is("features", NS_STREAMS) || this.entity.isSecure()) return;
    const offer = element.getChild("starttls", NS_TLS);
    if (this.mode === "off" && !offer?.getChild("required", NS_TLS)) {
      // Off means plain text: the library would otherwise upgrade on its own, with default trust only.
      if (offer) element.remove(offer);
      return;
    }
    element.children = [];
    if (this.mode === "off") {
      // RFC 6120 §5.3.1: <required/> marks STARTTLS mandatory-to-negotiate; logging in would only fail later.
      this.refuse(
        new TlsError(
          "the server requires STARTTLS but TLS is off (AGENT_TLS=off, or the default for xmpp:// on loopback): set AGENT_TLS=required",
          "STARTTLS_REQUIRED",
        ),
      );
      return;
    }
    if (!offer) {
      this.refuse(
        new TlsError("the server offers no STARTTLS (RFC 6120 §5): TLS is required, not connecting in plain text", "NO_STARTTLS"),
      );
      return;
    }
    this.startTls().catch((err: unknown) => this.refuse(err));
  }

  private async startTls(): Promise<void> {
    const plain = this.entity.socket;
    if (!(plain instanceof net.Socket)) throw new TlsError("STARTTLS needs a TCP connection", "NO_STARTTLS");
    const answer = await this.entity.sendReceive(this.xml("starttls", { xmlns: NS_TLS }));
    // RFC 6120 §5.4.2.2: <failure/>, and the server closes the stream.
    if (!answer.is("proceed", NS_TLS)) throw new TlsError(`the server answered STARTTLS with <${answer.name}/>`, "STARTTLS_FAILURE");
    const secure = new this.Socket();
    await secure.upgrade(plain);
    this.entity._attachSocket(secure);
    await this.entity.restart();
  }

  /** Reports why, and closes the connection: the supervisor retries with backoff, each time on the same terms. */
  private refuse(err: unknown): void {
    this.entity.emit("error", err);
    (this.entity.socket as { destroy?(): void } | null)?.destroy?.();
  }
}
