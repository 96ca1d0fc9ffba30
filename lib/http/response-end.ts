import type { ServerResponse } from "node:http";

/**
 * Runs `callback` when the response is over: written whole, or its client gone (node's `close`, which comes
 * in both cases; `res.writableFinished` tells which). Several parts of a server each need that moment (an
 * access log, an in-flight ceiling, a memory budget, a request waiting for a slot, a connection tracker, a
 * proxied exchange).
 *
 * Each callback is a plain `close` listener of its own: not a `once` listener, which costs a wrapper, a bound
 * function and their state per listener for as long as the request is held (`close` comes once anyway); and
 * not a list of callbacks kept on the response, grown as parts add theirs. Such a list is an array literal,
 * and V8 allocates an array literal whose arrays tend to live long (as they do while requests are held)
 * straight in the old generation: growing one then leaves its first backing store there, still pointing at
 * the first callback and, through it, at the whole request, until the next full collection. Every request
 * then survived the young collections and was promoted (docs/benchmark.md, "What a request leaves behind").
 *
 * For a response already closed the callback runs in a microtask, as a listener would have run after the
 * caller's synchronous code, never in the middle of it (node sets `closed` before it emits `close`, so a
 * callback added while `close` is being emitted runs too).
 */
export function whenClosed(res: ServerResponse, callback: () => void): void {
  if (res.closed) {
    queueMicrotask(callback);
    return;
  }
  res.on("close", callback);
}
