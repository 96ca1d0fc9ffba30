import xmppComponent from "@xmpp/component";
import type { Component, LtxElement } from "@xmpp/component";
import type { BackoffOptions } from "../../adapters/shared/backoff.js";
import { discoInfo, NS_DISCO_INFO, NS_PING } from "../../adapters/shared/disco.js";
import { asXmlElement, toLibraryElement } from "../../adapters/shared/elements.js";
import { ConnectionSupervisor } from "../../adapters/shared/supervisor.js";
import type { XmlElement } from "../../adapters/xep0332/xml.js";
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

/**
 * The gateway's one door to `@xmpp/component` (XEP-0114 external component). It answers disco#info and
 * XEP-0199 pings itself, and hands every other stanza to the handlers as a neutral XmlElement.
 */
export class XmppComponent implements Lifecycle {
  private readonly entity: Component;
  private readonly supervisor: ConnectionSupervisor;
  private readonly handlers: StanzaHandler[] = [];
  readonly domain: string;

  constructor(opts: ComponentOptions, private readonly deps: { logger: Logger; onOnlineChange?: (online: boolean) => void }) {
    this.domain = opts.domain;
    this.entity = xmppComponent.component({ service: opts.service, domain: opts.domain, password: opts.secret });
    const log = deps.logger.child({ component: "xmpp" });
    this.supervisor = new ConnectionSupervisor(
      this.entity,
      {
        onEvent: (event, fields) => {
          if (event === "error" || event === "retry") log.warn({ event, ...fields }, `xmpp component ${event}`);
          else log.info({ event, ...fields }, `xmpp component ${event}`);
        },
        ...(deps.onOnlineChange ? { onOnlineChange: deps.onOnlineChange } : {}),
      },
      opts.backoff,
    );
    this.entity.iqCallee.get(NS_DISCO_INFO, "query", () =>
      this.toElement(discoInfo({ category: "gateway", type: "http", name: "HTTP-to-XMPP gateway" })));
    this.entity.iqCallee.get(NS_PING, "ping", () => true);
    this.entity.on("stanza", (stanza: LtxElement) => {
      const el = asXmlElement(stanza);
      for (const h of this.handlers) h(el);
    });
  }

  get online(): boolean {
    return this.supervisor.online;
  }

  onStanza(handler: StanzaHandler): void {
    this.handlers.push(handler);
  }

  async start(): Promise<void> {
    await this.supervisor.start();
  }

  waitOnline(timeoutMs: number): Promise<void> {
    return this.supervisor.waitOnline(timeoutMs);
  }

  async stop(): Promise<void> {
    await this.supervisor.stop();
  }

  /** Sends one stanza; refuses at once when the component is not connected (nothing is queued). */
  async send(stanza: XmlElement): Promise<void> {
    if (!this.supervisor.online) throw new GatewayError("GW_XMPP_UNAVAILABLE");
    try {
      await this.entity.send(this.toElement(stanza));
    } catch (err) {
      throw new GatewayError("GW_XMPP_UNAVAILABLE", { cause: err });
    }
  }

  private toElement(node: XmlElement): LtxElement {
    return toLibraryElement(xmppComponent.xml, node);
  }
}
