/**
 * When a request that failed on a kept-alive connection may be sent again: a device's server may close an
 * idle connection just as a client reuses it (RFC 9112 §9.3.1). Used by the device agent's calls to the
 * local server and by the gateway's HTTP pass-through.
 */

/** Methods a client may send again after a connection failure (RFC 9110 §9.2.2). */
export const IDEMPOTENT: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** Each retry takes one stale connection out of the pool; a new connection's failure is never retried. */
export const MAX_STALE_RETRIES = 3;
