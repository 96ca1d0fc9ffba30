// The baseline requester for (a): a bare @xmpp/component that sends XEP-0332 `<req>` IQs and matches the
// results by id itself, with none of the gateway's work (HTTP, Redis, codec, metrics) around it.
import xmppComponent from "@xmpp/component";
import type { Component, LtxElement } from "@xmpp/component";

const { component, xml } = xmppComponent;

const NS_HTTP = "urn:xmpp:http";
const NS_SHIM = "http://jabber.org/protocol/shim";

export interface RawIqOptions {
  service: string;
  domain: string;
  secret: string;
  /** Per-request bound, like the gateway's deadline, so a lost reply cannot hold a loop forever. */
  timeoutMs: number;
}

export interface RawIqClient {
  /** Sends a GET for `resource` to `jid`; resolves with the `<resp>` element of a 200 reply. */
  get(jid: string, resource: string): Promise<LtxElement>;
  stop(): Promise<void>;
}

interface Waiter {
  resolve(stanza: LtxElement): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

function childNamed(el: LtxElement, name: string): LtxElement | undefined {
  return el.children.find((c): c is LtxElement => typeof c !== "string" && c.name === name);
}

/** The text of `<resp><data><text>`, for the sanity check that a real device answered. */
export function responseText(resp: LtxElement): string {
  const text = childNamed(childNamed(resp, "data") ?? resp, "text");
  return text ? text.children.filter((c): c is string => typeof c === "string").join("") : "";
}

export async function startRawIq(opts: RawIqOptions): Promise<RawIqClient> {
  const entity: Component = component({ service: opts.service, domain: opts.domain, password: opts.secret });
  // A dropped connection must show up as errors in the numbers, not be papered over by a reconnect.
  entity.reconnect.stop();
  entity.on("error", () => undefined);
  const waiting = new Map<string, Waiter>();
  let seq = 0;

  entity.on("stanza", (stanza: LtxElement) => {
    const type = stanza.attrs.type;
    if (stanza.name !== "iq" || (type !== "result" && type !== "error")) return;
    const w = waiting.get(stanza.attrs.id ?? "");
    if (!w) return;
    waiting.delete(stanza.attrs.id ?? "");
    clearTimeout(w.timer);
    w.resolve(stanza);
  });
  entity.on("disconnect", () => {
    for (const [id, w] of waiting) {
      waiting.delete(id);
      clearTimeout(w.timer);
      w.reject(new Error("component disconnected"));
    }
  });

  await entity.start();

  const get = async (jid: string, resource: string): Promise<LtxElement> => {
    const n = seq++;
    // The same shape the gateway sends for a bodiless GET, at the same size: the XEP attributes plus two
    // headers, an IQ id of 16 characters as the gateway's (gateway/correlation/ids.ts) and an X-Request-Id
    // of a UUID's 36 (what the gateway makes when the client sends none), both counters here: no random
    // bytes to pay for in the load process. The agent echoes both in its reply.
    const id = n.toString(36).padStart(16, "0");
    const requestId = `00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
    const iq = xml(
      "iq",
      { type: "set", id, to: jid, from: opts.domain },
      xml(
        "req",
        { xmlns: NS_HTTP, method: "GET", resource, version: "1.1", maxChunkSize: "32768", sipub: "false", ibb: "false", jingle: "false" },
        xml(
          "headers",
          { xmlns: NS_SHIM },
          xml("header", { name: "Host" }, "127.0.0.1"),
          xml("header", { name: "X-Request-Id" }, requestId),
        ),
      ),
    );
    const reply = new Promise<LtxElement>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`no reply within ${opts.timeoutMs} ms`));
      }, opts.timeoutMs);
      waiting.set(id, { resolve, reject, timer });
    });
    try {
      await entity.send(iq);
    } catch (err) {
      const w = waiting.get(id);
      waiting.delete(id);
      if (w) clearTimeout(w.timer);
      throw err;
    }
    const stanza = await reply;
    if (stanza.attrs.type === "error") throw new Error(`stanza error from ${jid}`);
    const resp = childNamed(stanza, "resp");
    if (!resp) throw new Error("IQ result without <resp>");
    if (resp.attrs.statusCode !== "200") throw new Error(`status ${resp.attrs.statusCode}`);
    return resp;
  };

  return {
    get,
    async stop() {
      try {
        await entity.stop();
      } catch {
        // the socket is gone either way
      }
    },
  };
}
