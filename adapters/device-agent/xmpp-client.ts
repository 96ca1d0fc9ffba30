import { client, xml, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { NS_HTTP } from "../../lib/xep0332/constants.js";
import type { XmlElement } from "../../lib/xep0332/xml.js";
import type { BackoffOptions } from "../../lib/backoff.js";
import { discoInfo, NS_DISCO_INFO, NS_PING } from "../../lib/xmpp/disco.js";
import { asXmlElement, toLibraryElement } from "../../lib/xmpp/elements.js";
import { SupervisedConnection } from "../../lib/xmpp/supervised-connection.js";
import { ConnectionSupervisor, type RetryPolicy, type SupervisedEntity, type SupervisorEvents } from "../../lib/xmpp/supervisor.js";
import { parseServiceList, resolveServices, ServerRotation, type ServiceEntry, type SrvLookup } from "./servers.js";
import { ClientTls, type AgentTlsOptions, type TlsEntity } from "./tls.js";

export interface DeviceConnectionOptions {
  /** AGENT_SERVICE's text: one server, or a comma-separated list of them and of SRV domains (servers.ts). */
  service: string;
  domain: string;
  username: string;
  password: string;
  resource: string;
  /** Force a SASL mechanism. PLAIN on loopback or under TLS logs in ~100x faster than SCRAM-SHA-1 (PBKDF2). */
  saslMechanism?: string;
  /** TLS policy and trust anchors (tls.ts); absent: required, except plain text for xmpp:// on loopback. */
  tls?: AgentTlsOptions;
  backoff?: BackoffOptions;
  /** An attempt not online within this bound is abandoned and retried (default 10 s). */
  attemptTimeoutMs?: number;
  /** SRV lookups for xmpp-srv:// entries; default node's resolver (tests inject records). */
  srvLookup?: SrvLookup;
}

/** Answers an incoming XEP-0332 request: the `<resp>` (or a stanza `<error>`), plus work to run after it is sent. */
export type RequestHandler = (stanza: XmlElement, payload: XmlElement) => Promise<{ reply: XmlElement; after?: () => void }>;

/** What the agent uses of xmpp.js's IQ callee (its declared type does not resolve under NodeNext). */
interface IqCallee {
  get(ns: string, name: string, handler: (ctx: { stanza: Element; element: Element }) => unknown): void;
  set(ns: string, name: string, handler: (ctx: { stanza: Element; element: Element }) => unknown): void;
}

/**
 * The agent's one door to `@xmpp/client`: a device's c2s connection, kept up by the shared supervisor,
 * answering disco#info and XEP-0199 pings, and routing XEP-0332 requests to one handler.
 */
export class DeviceConnection extends SupervisedConnection<Element> {
  private readonly entity: Client;
  private readonly callee: IqCallee;
  private readonly tls: ClientTls;

  constructor(opts: DeviceConnectionOptions, events: SupervisorEvents & { onOnline?: () => void }) {
    const mechanism = opts.saslMechanism;
    const entries = parseServiceList(opts.service);
    const entity = client({
      service: entries[0]?.kind === "url" ? entries[0].url : "xmpp://localhost:5222", // set before each attempt
      domain: opts.domain,
      resource: opts.resource,
      credentials: async (authenticate, mechanisms) => {
        const chosen = mechanism && mechanisms.includes(mechanism) ? mechanism : mechanisms[0];
        await authenticate({ username: opts.username, password: opts.password }, chosen as string, undefined as unknown as Element); // no user agent: plain SASL (RFC 4422), not SASL2
      },
    });
    const tls = new ClientTls(entity as unknown as TlsEntity, xml, opts);
    const retry = rotationPolicy(entries, entity as unknown as { options: { service: string } }, {
      ...opts,
      directTls: tls.mode !== "off",
    });
    const supervisor = new ConnectionSupervisor(entity as unknown as SupervisedEntity, events, retry, opts.attemptTimeoutMs);
    super(supervisor, xml, (node) => entity.send(toLibraryElement(xml, node)));
    this.entity = entity;
    this.callee = (entity as unknown as { iqCallee: IqCallee }).iqCallee;
    this.tls = tls;
    entity.on("online", () => events.onOnline?.());
    this.callee.get(NS_DISCO_INFO, "query", () =>
      this.toElement(discoInfo({ category: "client", type: "bot", name: "XEP-0332 device agent" })),
    );
    this.callee.get(NS_PING, "ping", () => true);
  }

  /** The server of the current (or next) attempt, e.g. `xmpp://b.example.com:5222`. */
  get server(): string {
    return (this.entity as unknown as { options: { service: string } }).options.service;
  }

  /** The TLS version of the current connection (`TLSv1.3`), or undefined when it is not encrypted. */
  get tlsProtocol(): string | undefined {
    return this.tls.protocol;
  }

  /** Routes `<req>` (and slixmpp's `<request>`) IQ sets to the handler. */
  onRequest(handler: RequestHandler): void {
    for (const name of ["req", "request"]) {
      this.callee.set(NS_HTTP, name, async (ctx: { stanza: Element; element: Element }) => {
        const { reply, after } = await handler(asXmlElement(ctx.stanza), asXmlElement(ctx.element));
        // The middleware writes the IQ reply in the microtasks that follow our return; a macrotask runs
        // after them, so chunk messages leave after the `<resp>` that announces them (XEP-0332 order).
        if (after) setImmediate(after);
        return this.toElement(reply);
      });
    }
  }

  onStanza(handler: (stanza: XmlElement) => void): void {
    this.entity.on("stanza", (stanza: Element) => handler(asXmlElement(stanza)));
  }

  protected unavailable(cause?: unknown): Error {
    return new Error("device connection is offline", cause === undefined ? undefined : { cause });
  }
}

/**
 * The servers of AGENT_SERVICE in turn (servers.ts, ServerRotation): before each attempt the entity is pointed
 * at the rotation's current server; SRV entries are resolved at the first attempt and after each failed round.
 */
function rotationPolicy(
  entries: readonly ServiceEntry[],
  entity: { options: { service: string } },
  opts: Pick<DeviceConnectionOptions, "backoff" | "srvLookup"> & { directTls: boolean },
): RetryPolicy {
  const rotation = new ServerRotation(opts.backoff);
  const dynamic = entries.some((e) => e.kind === "srv");
  let stale = true;
  return {
    async beforeAttempt() {
      if (stale) {
        rotation.load(await resolveServices(entries, opts.srvLookup, { directTls: opts.directTls }));
        stale = false;
      }
      entity.options.service = rotation.current;
    },
    succeeded: () => rotation.succeeded(),
    failed: () => {
      const { delayMs, roundOver } = rotation.failed();
      if (roundOver && dynamic) stale = true;
      return delayMs;
    },
    describe: () =>
      stale
        ? { resolveAgain: true, failedRounds: rotation.failedRounds }
        : { next: rotation.current, failedRounds: rotation.failedRounds, servers: rotation.servers.length },
  };
}
