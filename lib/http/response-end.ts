import type { ServerResponse } from "node:http";

/** The callbacks waiting for one response's end, kept on the response itself. */
type Ending = ServerResponse & { endings?: Array<() => void> };

/**
 * Runs `callback` when the response is over: written whole, or its client gone (node's `close`, which comes
 * in both cases; `res.writableFinished` tells which). Several parts of a server each need that moment (an
 * access log, an in-flight ceiling, a memory budget, a request waiting for a slot, a connection tracker, a
 * proxied exchange): one `close` listener per response calls them all in the order they came, instead of
 * one `once` listener each, which costs a wrapper, a bound function and their state per listener for as
 * long as the request is held (with 10,000 held, megabytes), and adding and removing each on every
 * request. For a response already closed the callback runs in a microtask, as a listener would have run
 * after the caller's synchronous code, never in the middle of it.
 */
export function whenClosed(res: ServerResponse, callback: () => void): void {
  if (res.closed) {
    queueMicrotask(callback);
    return;
  }
  const ending = res as Ending;
  if (ending.endings) {
    ending.endings.push(callback);
    return;
  }
  const endings = [callback];
  ending.endings = endings;
  // `on`, not `once`: `close` comes once (emitClose), and a `once` listener is itself a wrapper, a bound
  // function and their state, held as long as the response. Each callback is taken off as it runs (one added
  // meanwhile runs too), so none runs twice.
  res.on("close", () => {
    for (let end = endings.shift(); end; end = endings.shift()) end();
  });
}
