// A c2s server that misbehaves on purpose (RFC 6120 seen from a broken or hostile server): each connection is
// given the next case of a list, plays an honest minimal server up to that case's step of the negotiation, then
// does that case's harm. Switched to honest mode, it relays every new connection to a real server instead, so
// the same clients can be seen coming online once the server behaves.
import net from "node:net";

/** Where in the negotiation the harm happens. */
export const STEPS = [
  "connect", // on accept, before any byte either way
  "header", // after the server's stream header, before its features
  "sasl", // on the client's <auth/> (a component's <handshake/>, XEP-0114)
  "bind", // on the client's resource binding IQ (after the restarted stream); a component has none
  "online", // after the session is up: on a client's first stanza (its presence), at once for a component
] as const;
/** "starttls": on the client's <starttls/>, right after the server's <proceed/> (RFC 6120 §5.4.2.3), when offered. */
export type Step = (typeof STEPS)[number] | "starttls";

/** What the server does at that step. */
export const HARMS = [
  "reset", // RST (socket.resetAndDestroy): the client reads ECONNRESET
  "half-close", // FIN, and the server keeps reading
  "close-on-write", // closes as soon as the client writes again: its next writes meet EPIPE/ECONNRESET
  "not-well-formed", // one XML error, then more bytes once the client has answered it
  "two-xml-errors", // two XML errors in one TCP read
  "stream-error", // <stream:error><not-well-formed/>, then holds the connection open and silent
  "empty-stream-error", // <stream:error/> with no condition (RFC 6120 §4.9.2 requires one)
  "bad-see-other-host", // <see-other-host/> (RFC 6120 §4.9.3.19) naming something that is not a host
] as const;
export type Harm = (typeof HARMS)[number];

export interface HostileCase {
  step: Step;
  harm: Harm;
}

export const ALL_CASES: HostileCase[] = STEPS.flatMap((step) => HARMS.map((harm) => ({ step, harm })));

const NS_STREAMS = "http://etherx.jabber.org/streams";
const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";

export interface HostileXmppServer {
  /** `xmpp://127.0.0.1:port` */
  readonly service: string;
  /** How many times each case (`step/harm`) has been carried out. */
  readonly done: ReadonlyMap<string, number>;
  /** Connections held open after a stream error, waiting for their account to connect again. */
  readonly holding: number;
  /** From now on new connections get an honest (minimal) server: accounts held for come back and release theirs. */
  calm(): void;
  /** From now on every new connection is relayed to `target` (host:port); connections still open are reset. */
  beHonest(target: { host: string; port: number }): void;
  stop(): Promise<void>;
}

export function caseName(c: HostileCase): string {
  return `${c.step}/${c.harm}`;
}

/**
 * `flavour`: a c2s server (RFC 6120: SASL PLAIN, then resource binding) or a component port (XEP-0114: a
 * handshake, after which the component is online).
 */
export async function startHostileXmppServer(opts: {
  domain: string;
  cases: readonly HostileCase[];
  flavour?: "client" | "component";
  /** Offer STARTTLS as required (a client then negotiates it before anything else, RFC 6120 §5.3.1). */
  starttls?: boolean;
}): Promise<HostileXmppServer> {
  const component = opts.flavour === "component";
  const done = new Map<string, number>();
  const open = new Set<net.Socket>();
  /** Connections held open after a harm, by the SASL username that opened them: reset when that user comes back. */
  const held = new Map<string, net.Socket>();
  let next = 0;
  let honest: { host: string; port: number } | undefined;
  let calm = false;

  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    open.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => open.delete(socket));
    if (honest) return relay(socket, honest);
    play(socket, calm ? undefined : opts.cases[next++ % opts.cases.length]);
  });

  function relay(socket: net.Socket, target: { host: string; port: number }): void {
    const upstream = net.connect(target.port, target.host);
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
    socket.pipe(upstream);
    upstream.pipe(socket);
    socket.on("close", () => upstream.destroy());
    upstream.on("close", () => socket.destroy());
  }

  /** Plays the minimal server, and `c`'s harm at its step (none without a case). */
  function play(socket: net.Socket, c: HostileCase | undefined): void {
    let buffered = "";
    let streams = 0;
    let user = "";
    let harmed = false;
    const harm = () => {
      if (!c) return;
      harmed = true;
      done.set(caseName(c), (done.get(caseName(c)) ?? 0) + 1);
      switch (c.harm) {
        case "reset":
          socket.resetAndDestroy();
          return;
        case "half-close":
          socket.end();
          return;
        case "close-on-write":
          socket.once("data", () => socket.destroy());
          // Online, a component may have nothing to say: a ping (XEP-0199) makes it write.
          if (c.step === "online")
            socket.write(`<iq type='get' id='hostile-ping' from='${opts.domain}' to='${opts.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`);
          return;
        case "not-well-formed":
          // An end tag that closes nothing open (XML 1.0 §3, element type match): ltx, lenient about much
          // else, reports this one.
          socket.write("</not-opened>");
          // The client answers with its own stream error (or a close): whatever comes next is more garbage.
          socket.once("data", () => socket.write("</a></b> still not XML"));
          return;
        case "two-xml-errors":
          socket.write("</a></b><c>");
          return;
        case "stream-error":
          socket.write(`<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`);
          hold();
          return;
        case "empty-stream-error":
          socket.write("<stream:error/>");
          hold();
          return;
        case "bad-see-other-host":
          socket.write(`<stream:error><see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[</see-other-host></stream:error>`);
          socket.end();
          return;
      }
    };
    // Silent from now on: neither answers the client's closing of the stream nor closes; reset when the same
    // account connects again, by which time the client has given this connection up.
    const hold = () => {
      if (!user) return;
      held.get(user)?.resetAndDestroy();
      held.set(user, socket);
    };
    const header = (id: string) =>
      `<?xml version='1.0'?><stream:stream xmlns='${component ? "jabber:component:accept" : "jabber:client"}' xmlns:stream='${NS_STREAMS}' id='${id}' from='${opts.domain}'${component ? "" : " version='1.0'"}>`;

    if (c?.step === "connect") return harm();
    socket.on("data", (data: Buffer) => {
      if (harmed) return;
      buffered += data.toString("utf8");
      for (;;) {
        if (harmed) return;
        const header0 = /<stream:stream[^>]*>/.exec(buffered);
        if (header0) {
          buffered = buffered.slice(header0.index + header0[0].length);
          streams++;
          socket.write(header(`s${streams}`));
          if (c?.step === "header") return harm();
          if (component) continue; // XEP-0114: no features, the component answers with its handshake
          if (opts.starttls && streams === 1) {
            socket.write(`<stream:features><starttls xmlns='${NS_TLS}'><required/></starttls></stream:features>`);
            continue;
          }
          socket.write(
            streams === 1
              ? `<stream:features><mechanisms xmlns='${NS_SASL}'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`
              : `<stream:features><bind xmlns='${NS_BIND}'/></stream:features>`,
          );
          continue;
        }
        const starttls = opts.starttls ? /<starttls[^>]*\/>/.exec(buffered) : null;
        if (starttls) {
          buffered = buffered.slice(starttls.index + starttls[0].length);
          socket.write(`<proceed xmlns='${NS_TLS}'/>`);
          // Whatever follows is TLS (a ClientHello); this server does not speak it: harm, or silence.
          if (c?.step === "starttls") return harm();
          return;
        }
        const handshake = component ? /<handshake[^>]*>[^<]*<\/handshake>/.exec(buffered) : null;
        if (handshake) {
          buffered = buffered.slice(handshake.index + handshake[0].length);
          user = "component";
          const old = held.get(user);
          if (old && old !== socket) {
            held.delete(user);
            old.resetAndDestroy();
          }
          if (c?.step === "sasl") return harm();
          socket.write("<handshake/>");
          if (c?.step === "online") setImmediate(harm);
          continue;
        }
        const auth = /<auth[^>]*>([^<]*)<\/auth>/.exec(buffered);
        if (auth) {
          buffered = buffered.slice(auth.index + auth[0].length);
          user =
            Buffer.from(auth[1] ?? "", "base64")
              .toString("utf8")
              .split("\0")[1] ?? "";
          // The same account back on a new connection: the one held for it is reset now.
          const old = held.get(user);
          if (old && old !== socket) {
            held.delete(user);
            old.resetAndDestroy();
          }
          if (c?.step === "sasl") return harm();
          socket.write(`<success xmlns='${NS_SASL}'/>`);
          continue;
        }
        const bind = /<iq[^>]*id=["']([^"']+)["'][^>]*>.*?<\/iq>/s.exec(buffered);
        if (bind && streams >= 2) {
          buffered = buffered.slice(bind.index + bind[0].length);
          if (c?.step === "bind") return harm();
          socket.write(`<iq type='result' id='${bind[1]}'><bind xmlns='${NS_BIND}'><jid>${user}@${opts.domain}/agent</jid></bind></iq>`);
          continue;
        }
        if (/<presence/.test(buffered) && c?.step === "online") return harm();
        return;
      }
    });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    service: `xmpp://127.0.0.1:${port}`,
    done,
    get holding() {
      return held.size;
    },
    calm() {
      calm = true;
    },
    beHonest(target) {
      honest = target;
      held.clear();
      for (const s of open) s.resetAndDestroy();
    },
    async stop() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
