import { request, type Agent, type ClientRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { fromRawHeaders, stripHopByHop } from "../xep0332/headers.js";
import type { HttpRequestMessage, HttpResponseMessage } from "../xep0332/message.js";

export interface LocalCallOptions {
  timeoutMs: number;
  maxBodyBytes: number;
  agent?: Agent;
}

/** Methods a client may send again after a connection failure (RFC 9110 §9.2.2). */
const IDEMPOTENT: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** Each retry takes one stale connection out of the pool; a new connection's failure is never retried. */
const MAX_STALE_RETRIES = 3;

/** Why the agent answered for the device itself; sent in `X-Device-Agent-Error` and the JSON body. */
export type LocalFailure = "local-unreachable" | "local-timeout" | "local-reply-too-large";

/**
 * Calls the legacy device's own HTTP server with the request as the gateway received it. Every failure
 * becomes an HTTP answer (502 unreachable or too large, 504 timeout): the gateway always gets a `<resp>`.
 * The Host header names the local server, as it would for a reverse proxy, since that is who answers.
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
      let answered = false;
      req.on("error", (err) => {
        // A kept-alive connection the device closed (its idle timeout) just as we reused it: nothing was
        // answered, and an idempotent request may be sent again on another connection (RFC 9112 §9.3.1).
        // A POST or PATCH may have been acted on, so its failure is the answer.
        if (!settled && !answered && req.reusedSocket && IDEMPOTENT.has(msg.method) && staleRetriesLeft > 0) {
          attempt(staleRetriesLeft - 1);
          return;
        }
        finish(failure(502, "local-unreachable", `device HTTP server unreachable: ${err.message}`));
      });
      req.on("response", (res) => {
        answered = true;
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
        res.on("error", (err) => finish(failure(502, "local-unreachable", `device HTTP server reset the reply: ${err.message}`)));
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

function failure(statusCode: number, code: LocalFailure, message: string): HttpResponseMessage {
  return {
    statusCode,
    headers: [["Content-Type", "application/json"], ["X-Device-Agent-Error", code]],
    body: Buffer.from(JSON.stringify({ error: { code, message } })),
  };
}
