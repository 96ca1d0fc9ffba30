import xmppComponent from "@xmpp/component";
import type { LtxElement } from "@xmpp/component";
import type { BackoffOptions } from "../../lib/backoff.js";
import { discoInfo, NS_DISCO_INFO, NS_PING } from "../../lib/xmpp/disco.js";
import { asXmlElement } from "../../lib/xmpp/elements.js";
import { answerIq, isIqRequest, type IqRoute } from "../../lib/xmpp/iq-answer.js";
import { SupervisedConnection } from "../../lib/xmpp/supervised-connection.js";
import { ConnectionSupervisor } from "../../lib/xmpp/supervisor.js";
import { WriteBatch } from "../../lib/xmpp/write-batch.js";
import { serialize, type XmlElement } from "../../lib/xep0332/xml.js";
import { GatewayError } from "../errors.js";
import type { Lifecycle } from "../lifecycle.js";
import type { Logger } from "../log.js";

export interface ComponentOptions {
  service: string;
  domain: string;
  secret: string;
  backoff?: BackoffOptions;
}

export type StanzaHandler = (stanza: XmlElement) => void;

/** The IQ requests the component answers: XEP-0030 disco#info (XEP-0332 §4) and XEP-0199 ping. */
const IQ_ROUTES: readonly IqRoute[] = [
  {
    type: "get",
    xmlns: NS_DISCO_INFO,
    name: "query",
    answer: () => discoInfo({ category: "gateway", type: "http", name: "HTTP-to-XMPP gateway" }),
  },
  { type: "get", xmlns: NS_PING, name: "ping", answer: () => undefined },
];

/**
 * The gateway's one door to `@xmpp/component` (XEP-0114 external component). It answers disco#info and
 * XEP-0199 pings itself, and hands every other stanza to the handlers as a neutral XmlElement.
 */
export class XmppComponent extends SupervisedConnection<LtxElement> implements Lifecycle {
  private readonly handlers: StanzaHandler[] = [];
  private readonly closedHandlers: Array<() => void>;
  readonly domain: string;

  /**
   * `onStanza`: every stanza the component receives (replies, chunks, presence); `onClosed`: each time an
   * online connection has closed (its socket is gone), however it ended.
   */
  constructor(
    opts: ComponentOptions,
    deps: { logger: Logger; onOnlineChange?: (online: boolean) => void; onStanza?: StanzaHandler; onClosed?: () => void },
  ) {
    const entity = xmppComponent.component({ service: opts.service, domain: opts.domain, password: opts.secret });
    const log = deps.logger.child({ component: "xmpp" });
    const closedHandlers: Array<() => void> = deps.onClosed ? [deps.onClosed] : [];
    const supervisor = new ConnectionSupervisor(
      entity,
      {
        onEvent: (event, fields) => {
          if (event === "replaced")
            log.error({ event, ...fields }, "xmpp component replaced by a newer connection: staying off XMPP (rolling replacement)");
          else if (event === "error" || event === "retry") log.warn({ event, ...fields }, `xmpp component ${event}`);
          else log.info({ event, ...fields }, `xmpp component ${event}`);
          // "offline" comes once an online connection is closed: stopped, lost or replaced.
          if (event === "offline") for (const h of closedHandlers) h();
        },
        ...(deps.onOnlineChange ? { onOnlineChange: deps.onOnlineChange } : {}),
      },
      opts.backoff,
    );
    // Serialized here and batched per pass of the event loop (WriteBatch), rather than sent one by one
    // through `entity.send`: that builds the library's element tree only to serialize it, and a context
    // with two parsed JIDs for outgoing filters, which this component has none of.
    const batch = new WriteBatch((data) => entity.write(data));
    super(supervisor, xmppComponent.xml, (node) => batch.add(serialize(node)));
    this.domain = opts.domain;
    this.closedHandlers = closedHandlers;
    if (deps.onStanza) this.handlers.push(deps.onStanza);
    // `component()` installs xmpp.js's middleware, which builds a context with both JIDs parsed, and a
    // koa-compose chain, for every element received, only to run its IQ handlers: a few percent of the
    // gateway's CPU per request, every reply paying for it. This component answers its two IQ requests
    // itself (answerIq), so the middleware's listener is taken off; the library sends nothing through it.
    for (const listener of entity.listeners("element")) entity.removeListener("element", listener as (...args: unknown[]) => void);
    entity.on("stanza", (stanza: LtxElement) => {
      const el = asXmlElement(stanza);
      if (isIqRequest(el)) this.send(answerIq(el, IQ_ROUTES)).catch(() => undefined);
      for (const h of this.handlers) h(el);
    });
  }

  onStanza(handler: StanzaHandler): void {
    this.handlers.push(handler);
  }

  /** Called each time an online connection has closed (its socket is gone), however it ended. */
  onClosed(handler: () => void): void {
    this.closedHandlers.push(handler);
  }

  protected unavailable(cause?: unknown): Error {
    return new GatewayError("GW_XMPP_UNAVAILABLE", cause === undefined ? {} : { cause });
  }
}
