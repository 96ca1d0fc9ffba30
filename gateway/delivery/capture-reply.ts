import type { IncomingMessage } from "node:http";
import { fromRawHeaders, stripHopByHop } from "../../lib/xep0332/headers.js";
import { GatewayError } from "../errors.js";
import { storeError, storeReply, type StoredOutcome } from "./stored-outcome.js";

/**
 * A device's response over the HTTP pass-through, kept as the answer to retries of a request with an
 * Idempotency-Key (it is meanwhile streamed to the client as it arrives; this only listens). Kept whole
 * up to `maxBytes` of body (GATEWAY_MAX_REPLY_BYTES, the bound of a reply over XMPP too); a larger one, or
 * one that broke off, cannot be replayed, and since the device did act, retries get 504
 * GW_OUTCOME_UNKNOWN rather than a second run. Never rejects.
 */
export function captureReply(response: IncomingMessage, maxBytes: number): Promise<StoredOutcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let overflow = false;
    let settled = false;
    const finish = (outcome: StoredOutcome) => {
      if (settled) return;
      settled = true;
      chunks.length = 0;
      resolve(outcome);
    };
    const lost = (why: string) =>
      storeError(
        new GatewayError("GW_OUTCOME_UNKNOWN", {
          message: `the device answered the first request with this Idempotency-Key over HTTP, but its answer ${why}: it cannot be replayed`,
        }),
      );
    response.on("data", (chunk: Buffer) => {
      if (overflow) return;
      size += chunk.length;
      if (size > maxBytes) {
        overflow = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    response.once("end", () => {
      if (overflow) return finish(lost(`was over GATEWAY_MAX_REPLY_BYTES (${maxBytes})`));
      finish(
        storeReply({
          statusCode: response.statusCode ?? 502,
          statusMessage: response.statusMessage ?? "",
          // Hop-by-hop fields belong to the connection it came on (RFC 9110 §7.6.1), not to the answer.
          headers: stripHopByHop(fromRawHeaders(response.rawHeaders)),
          body: Buffer.concat(chunks, size),
        }),
      );
    });
    response.once("error", () => finish(lost("broke off")));
    response.once("aborted", () => finish(lost("broke off")));
    response.once("close", () => finish(lost("broke off")));
  });
}
