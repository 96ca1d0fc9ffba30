// Ports and bounded polling: how the local stack (tests, demo, bench) finds a free port and waits
// for a server to listen (or to stop listening) without ever sleeping a fixed time.
import net from "node:net";
import { setTimeout as delay } from "node:timers/promises";

export interface PollOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 25 ms). */
  intervalMs?: number;
  /** Stops the wait early, e.g. when the server process exits before it is ready. */
  signal?: AbortSignal;
}

/**
 * Calls `probe` until it returns something other than undefined/false, then returns that.
 * A probe that throws counts as "not yet"; its last error goes into the timeout message,
 * because "timed out" alone rarely says why.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 10_000, intervalMs = 25, signal }: PollOptions = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const result = await probe();
      if (result !== undefined && result !== false) return result;
    } catch (err) {
      lastError = err;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    try {
      // The abort ends the pause at once, so an early exit is reported without waiting.
      await delay(Math.min(intervalMs, left), undefined, signal ? { signal } : undefined);
    } catch (err) {
      signal?.throwIfAborted(); // surface the caller's reason, not a bare AbortError
      throw err;
    }
  }
}

/**
 * Asks the kernel for a free port (listen on port 0, read it, close). Another process may
 * still take it before the server binds it: starters that care retry with a new port.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("freePort: no TCP address");
  return address.port;
}

/** One TCP connect attempt: true if something accepts on host:port within the bound. */
export function isPortOpen(
  port: number,
  { host = "127.0.0.1", timeoutMs = 1_000 }: { host?: string; timeoutMs?: number } = {},
): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (open: boolean): void => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Polls a TCP connect every ~25 ms until host:port accepts, or throws after timeoutMs. */
export async function waitForPort(
  port: number,
  { host = "127.0.0.1", timeoutMs = 10_000, signal }: { host?: string; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  await pollUntil(`${host}:${port} to accept TCP connections`, () => isPortOpen(port, { host, timeoutMs: Math.min(1_000, timeoutMs) }), {
    timeoutMs,
    ...(signal ? { signal } : {}),
  });
}

/** The reverse of waitForPort: polls until nothing accepts on host:port any more. */
export async function waitForPortClosed(
  port: number,
  { host = "127.0.0.1", timeoutMs = 10_000 }: { host?: string; timeoutMs?: number } = {},
): Promise<void> {
  await pollUntil(`${host}:${port} to stop accepting TCP connections`, async () => !(await isPortOpen(port, { host })), {
    timeoutMs,
  });
}

/** A server could not bind the port it was given: someone took it between our probe and its bind. */
export class PortTaken extends Error {}

/**
 * Launches a server on freshly chosen ports, again with new ports when they were taken in the meantime
 * (a free port is only free until someone binds it), at most `attempts` times. Any other failure, or the
 * last one, is thrown.
 */
export async function onFreePorts<T>(launch: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch();
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= attempts) throw err;
    }
  }
}
