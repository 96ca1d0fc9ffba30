import { request, type Agent, type ClientRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { checkHeadLimits, fromRawHeaders, stripHopByHop } from "../../lib/xep0332/headers.js";
import type { HttpRequestMessage, HttpResponseMessage } from "../../lib/xep0332/message.js";
import { checkResponseHead } from "../../lib/http/response-head.js";
import { IDEMPOTENT, MAX_STALE_RETRIES } from "../../lib/http/stale-retry.js";

export interface LocalCallOptions {
  timeoutMs: number;
  maxBodyBytes: number;
  agent?: Agent;
}

/** Why the agent answered for the device itself; sent in `X-Device-Agent-Error` and the JSON body. */
export type LocalFailure = "local-unreachable" | "local-timeout" | "local-reply-too-large" | "local-bad-reply";

/**
 * Calls the legacy device's own HTTP server with the request as the gateway received it. Every failure
 * becomes an HTTP answer (502 unreachable, too large or not carriable, 504 timeout): the gateway always gets
 * a `<resp>`. The Host header names the local server, as it would for a reverse proxy, since that is who
 * answers.
 *
 * A reply is carried only when it can be carried faithfully: its head passes the same check as the
 * gateway's pass-through applies (lib/http/response-head.ts: HTTP/1.x, final status 200..599, no
 * control characters in the reason phrase or field values, token names, at most 100 fields, a
 * Transfer-Encoding that ends in chunked) and the codec's head bounds; a reply node's parser refuses
 * (`HPE_*`), or a 101 nobody asked for (RFC 9110 §15.2.2: the agent asks for no upgrade), is likewise
 * `local-bad-reply`. This is what keeps the agent's XMPP stream up: the head travels as XML, and XML 1.0
 * §2.2 has no way to carry NUL or most C0 controls, even escaped; the server would end the stream
 * (RFC 6120 §4.9.3.13 `not-well-formed`) and with it every request in flight on it. Obs-text (0x80-0xFF)
 * is legal HTTP and legal XML: node reads it as latin1 characters, which travel as UTF-8 and come back to
 * the same bytes.
 */
export function callLocal(baseUrl: URL, msg: HttpRequestMessage, opts: LocalCallOptions): Promise<HttpResponseMessage> {
  const basePath = baseUrl.pathname.replace(/\/$/, "");
  const path = msg.resource === "*" ? "*" : basePath + msg.resource;
  const headers = stripHopByHop(msg.headers).filter(([n]) => {
    const lower = n.toLowerCase();
    return lower !== "host" && lower !== "content-length";
  });
  headers.push(["Host", baseUrl.host]);
  if (msg.body.length > 0 || ["POST", "PUT", "PATCH"].includes(msg.method)) headers.push(["Content-Length", String(msg.body.length)]);

  return new Promise((resolve) => {
    let settled = false;
    let current: ClientRequest | undefined;
    const finish = (reply: HttpResponseMessage) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(reply);
    };
    const timer = setTimeout(() => {
      finish(failure(504, "local-timeout", `device HTTP server did not answer within ${opts.timeoutMs} ms`));
      current?.destroy();
    }, opts.timeoutMs);
    const send = baseUrl.protocol === "https:" ? httpsRequest : request;
    const attempt = (staleRetriesLeft: number): void => {
      const req = send({
        protocol: baseUrl.protocol,
        hostname: baseUrl.hostname,
        port: baseUrl.port,
        method: msg.method,
        path,
        headers: headers.flat(),
        ...(opts.agent ? { agent: opts.agent } : {}),
      });
      current = req;
      /** The reply being read, once its head arrived (and passed, when it is read on). */
      let reply: IncomingMessage | undefined;
      req.on("error", (err) => {
        // A kept-alive connection the device closed (its idle timeout) just as we reused it: nothing was
        // answered, and an idempotent request may be sent again on another connection (RFC 9112 §9.3.1).
        // A POST or PATCH may have been acted on, so its failure is the answer.
        if (!settled && reply === undefined && req.reusedSocket && IDEMPOTENT.has(msg.method) && staleRetriesLeft > 0) {
          attempt(staleRetriesLeft - 1);
          return;
        }
        // Bytes after a complete reply (a 204 or 304 that sends a body anyway: RFC 9112 §6.3 ends those at
        // their head) break the connection, not the reply. `end` comes a tick after the parser completed the
        // message, so such an error can overtake it; node still ends a complete reply: wait for that.
        if (reply?.complete) return;
        finish(socketFailure(err, "device HTTP server unreachable"));
      });
      // Node emits `upgrade` for a 101 and hands over the socket; with no listener it would wait until the timeout.
      req.on("upgrade", (_res, socket) => {
        socket.destroy();
        finish(
          failure(
            502,
            "local-bad-reply",
            "device answered 101 Switching Protocols to a request that asked for no upgrade (RFC 9110 §15.2.2)",
          ),
        );
      });
      req.on("response", (res) => {
        reply = res;
        const verdict = checkHead(res.httpVersionMajor, res.statusCode, res.statusMessage, res.rawHeaders);
        if (verdict !== undefined) {
          finish(failure(502, "local-bad-reply", `device reply cannot be carried: ${verdict}`));
          res.destroy();
          return;
        }
        const parts: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > opts.maxBodyBytes) {
            finish(failure(502, "local-reply-too-large", `device reply is over ${opts.maxBodyBytes} bytes`));
            res.destroy();
            return;
          }
          parts.push(chunk);
        });
        res.on("error", (err) => finish(socketFailure(err, "device HTTP server reset the reply")));
        res.on("end", () =>
          finish({
            statusCode: res.statusCode ?? 502,
            statusMessage: res.statusMessage ?? "",
            headers: stripHopByHop(fromRawHeaders(res.rawHeaders)),
            body: Buffer.concat(parts, size),
          }),
        );
      });
      req.end(msg.body);
    };
    attempt(MAX_STALE_RETRIES);
  });
}

/**
 * Why a head cannot be carried, or undefined when it can: the shared response-head check, then the codec's
 * bounds on what a `<resp>` head may hold (lib/xep0332/headers.ts).
 */
function checkHead(
  httpVersionMajor: number,
  statusCode: number | undefined,
  statusMessage: string | undefined,
  rawHeaders: string[],
): string | undefined {
  const verdict = checkResponseHead({ httpVersionMajor, statusCode, statusMessage, rawHeaders });
  if (!verdict.ok) return `${verdict.reason}: ${verdict.detail}`;
  try {
    checkHeadLimits(stripHopByHop(fromRawHeaders(rawHeaders)), statusMessage ?? "");
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

/** A failed read: node's parser refusing the device's bytes (`HPE_*`) is a bad reply, anything else unreachable. */
function socketFailure(err: Error & { code?: unknown }, what: string): HttpResponseMessage {
  if (typeof err.code === "string" && err.code.startsWith("HPE_")) {
    return failure(502, "local-bad-reply", `device reply is not valid HTTP/1.1 (RFC 9112): ${err.message} (${err.code})`);
  }
  return failure(502, "local-unreachable", `${what}: ${err.message}`);
}

/** The agent's own answer for the device (README, "What the agent answers"). */
export function failure(statusCode: number, code: LocalFailure, message: string): HttpResponseMessage {
  return {
    statusCode,
    headers: [
      ["Content-Type", "application/json"],
      ["X-Device-Agent-Error", code],
    ],
    body: Buffer.from(JSON.stringify({ error: { code, message } })),
  };
}
