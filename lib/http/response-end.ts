import type { ServerResponse } from "node:http";

/**
 * Runs `callback` when the response is over: written whole, or its client gone (node's `close`, which comes
 * in both cases; `res.writableFinished` tells which). Several parts of a server each need that moment (an
 * access log, an in-flight ceiling, a memory budget, a request waiting for a slot, a connection tracker, a
 * proxied exchange).
 *
 * Each callback is a plain `close` listener of its own: a server with more than ten parts waiting for the
 * same response must raise that response's listener limit (node warns past ten). Not a `once` listener,
 * which costs a wrapper, a bound function and their state per listener for as long as the request is held
 * (`close` comes once anyway). And not a list of our own kept on the response, which later parts add to: an
 * array grown per response, or a linked list, both measured. V8 allocates the objects of an allocation
 * site whose objects tend to live long (they do while requests are held) straight in the old generation;
 * such a list then points from the old generation at each callback added after it, and through them at the
 * whole request, until the next full collection, after the response is long over: every request survived
 * the young collections and was promoted (docs/benchmark.md, "What a request leaves behind"). Node's own
 * listener storage is shared with every emitter of the process, most of them short-lived, and stays young.
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
