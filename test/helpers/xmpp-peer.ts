// A scripted XMPP client standing in for a device: the test decides what it answers, when, and from whom.
import { client, xml, type Client } from "@xmpp/client";
import type { Element } from "@xmpp/xml";
import { NS_HTTP } from "../../lib/xep0332/constants.js";
import type { XmlElement } from "../../lib/xep0332/xml.js";
import { toLibraryElement, type XmlFactory } from "../../lib/xmpp/elements.js";
import type { ProsodyServer } from "../../local-stack/prosody.js";

export interface IncomingRequest {
  id: string;
  from: string;
  stanza: Element;
}

export interface Peer {
  jid: string;
  /** The next XEP-0332 request addressed to this peer (left unanswered until the test sends something). */
  nextRequest(timeoutMs?: number): Promise<IncomingRequest>;
  /** Every stanza received, for assertions on chunks, presence, errors. */
  received: Element[];
  send(node: XmlElement): Promise<void>;
  /** Writes raw text (or bytes: invalid UTF-8) on the stream: for input no XML builder would produce. */
  sendRaw(text: string | Buffer): Promise<void>;
  /** True while the stream is up; false once the server closed it (a stream error) or the peer stopped. */
  readonly online: boolean;
  /** Errors the connection reported, e.g. the server's stream error before it closed the stream. */
  errors: Error[];
  /** Sends an IQ get/set and resolves with the reply stanza. */
  query(to: string, payload: XmlElement, timeoutMs?: number): Promise<Element>;
  stop(): Promise<void>;
}

const factory = xml as unknown as XmlFactory<Element>;

/** The client's IQ router and caller (@xmpp/iq), typed with what the peer uses: tsc resolves them through
 * @types/xmpp__client, but the type-aware linter's project service sees both as unresolved types. */
interface IqEntity {
  iqCallee: { set(ns: string, name: string, handler: (ctx: { stanza: Element }) => unknown): void };
  iqCaller: { request(stanza: Element, timeoutMs?: number): Promise<Element> };
}

/** Any server with ProsodyServer's shape for these three members: Prosody or ejabberd (local-stack/). */
export type PeerServer = Pick<ProsodyServer, "service" | "vhost" | "createUsers">;

export async function startPeer(
  prosody: PeerServer,
  username: string,
  opts: { resource?: string; createAccount?: boolean } = {},
): Promise<Peer> {
  const password = `pw-${username}`;
  if (opts.createAccount !== false) await prosody.createUsers([{ username, password }]);
  const entity: Client = client({
    service: prosody.service,
    domain: prosody.vhost,
    resource: opts.resource ?? "agent",
    credentials: (auth, _mechs) => auth({ username, password }, "PLAIN", undefined as unknown as Element),
  });
  entity.reconnect.stop();
  const iq = entity as unknown as IqEntity;
  const errors: Error[] = [];
  entity.on("error", (err: Error) => errors.push(err));
  const received: Element[] = [];
  const queue: IncomingRequest[] = [];
  const waiters: Array<(r: IncomingRequest) => void> = [];
  entity.on("stanza", (stanza: Element) => received.push(stanza));
  // Returning a promise that never settles keeps xmpp.js from answering for us: the test answers.
  for (const name of ["req", "request"]) {
    iq.iqCallee.set(NS_HTTP, name, (ctx: { stanza: Element }) => {
      const r = { id: ctx.stanza.attrs.id as string, from: ctx.stanza.attrs.from as string, stanza: ctx.stanza };
      const w = waiters.shift();
      if (w) w(r);
      else queue.push(r);
      return new Promise(() => undefined);
    });
  }
  const online = new Promise<void>((resolve) => entity.once("online", () => resolve()));
  await entity.start();
  await online;
  const jid = `${username}@${prosody.vhost}/${opts.resource ?? "agent"}`;
  return {
    jid,
    received,
    errors,
    get online() {
      return entity.status === "online";
    },
    nextRequest(timeoutMs = 10_000) {
      const ready = queue.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`${jid}: no request within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((r) => {
          clearTimeout(t);
          resolve(r);
        });
      });
    },
    send: (node) => entity.send(toLibraryElement(factory, node)),
    // Connection.write hands its argument to socket.write, which takes bytes as well as text.
    sendRaw: (text) => (entity as unknown as { write(s: string | Buffer): Promise<void> }).write(text),
    query: (to, payload, timeoutMs = 5000) =>
      iq.iqCaller.request(
        xml("iq", { type: payload.name === "ping" || payload.name === "query" ? "get" : "set", to }, toLibraryElement(factory, payload)),
        timeoutMs,
      ),
    stop: async () => {
      try {
        await entity.stop();
      } catch {
        // already gone
      }
    },
  };
}

// The device's 200 text answer, built with the other stanzas a test device sends.
export { textReply } from "./stanzas.js";
