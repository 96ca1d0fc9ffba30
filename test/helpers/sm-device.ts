// A device session with XEP-0198 stream management, written by hand on a raw socket so that the test, not a
// library, decides what is acknowledged: it enables resumable stream management, waits for an XEP-0332
// request, and vanishes (the socket destroyed) without ever sending <a/>. The server then holds the session
// for resumption and, when that time runs out, bounces what the session never acknowledged.
import net from "node:net";
import type { PeerServer } from "./xmpp-peer.js";

export interface VanishingDevice {
  jid: string;
  /** Resolves once an XEP-0332 request reached the session; the socket is destroyed at that moment. */
  vanished: Promise<void>;
  stop(): void;
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/'/g, "&apos;").replace(/"/g, "&quot;");
}

export async function connectVanishingDevice(server: PeerServer, username: string, resource = "agent"): Promise<VanishingDevice> {
  const password = `pw-${username}`;
  await server.createUsers([{ username, password }]);
  const url = new URL(server.service);
  const socket = net.connect({ host: url.hostname, port: Number(url.port) });
  socket.setEncoding("utf8");
  let text = "";
  const waiters: Array<{ pattern: RegExp; resolve: () => void }> = [];
  let failed: Error | undefined;
  const failers: Array<(err: Error) => void> = [];
  socket.on("data", (chunk: string) => {
    text += chunk;
    for (const w of [...waiters]) {
      if (w.pattern.test(text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  socket.on("error", (err) => {
    failed = err;
    for (const f of failers.splice(0)) f(err);
  });
  /** Waits for `pattern` in what arrived since the last consume(), within 10 s. */
  const waitFor = (pattern: RegExp, what: string) =>
    new Promise<void>((resolve, reject) => {
      if (failed) return reject(failed);
      if (pattern.test(text)) return resolve();
      const t = setTimeout(() => reject(new Error(`${username}: no ${what} within 10 s; got ${text.slice(-500)}`)), 10_000);
      failers.push(reject);
      waiters.push({ pattern, resolve: () => (clearTimeout(t), resolve()) });
    });
  const consume = () => (text = "");
  const header = `<?xml version='1.0'?><stream:stream to='${escape(server.vhost)}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));

  socket.write(header);
  await waitFor(/<\/stream:features>/, "stream features");
  consume();
  const plain = Buffer.from(`\0${username}\0${password}`).toString("base64");
  socket.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plain}</auth>`);
  await waitFor(/<success\b/, "SASL success");
  consume();
  socket.write(header); // RFC 6120 §6.4.6: a new stream after SASL
  await waitFor(/<\/stream:features>/, "post-auth features");
  if (!/urn:xmpp:sm:3/.test(text)) throw new Error(`${username}: the server offers no XEP-0198 stream management: ${text}`);
  consume();
  socket.write(
    `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${escape(resource)}</resource></bind></iq>`,
  );
  await waitFor(/id=['"]bind1['"][^>]*type=['"]result['"]|type=['"]result['"][^>]*id=['"]bind1['"]/, "bind result");
  consume();
  // XEP-0198 §3 and §5: stream management with resumption, so that a lost connection hibernates the session.
  socket.write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
  await waitFor(/<enabled\b[^>]*resume=['"](true|1)['"]/, "stream management enabled with resumption");
  consume();
  const vanished = waitFor(/<iq\b[^>]*>[\s\S]*urn:xmpp:http/, "XEP-0332 request").then(() => {
    socket.destroy(); // no <a/>, no </stream:stream>: the connection is simply gone
  });
  vanished.catch(() => undefined);
  return { jid: `${username}@${server.vhost}/${resource}`, vanished, stop: () => socket.destroy() };
}
