// Teardown that always runs to the end, and the usual Redis + Prosody pair started together.
import { startEjabberd, type EjabberdServer } from "../../local-stack/ejabberd.js";
import { startProsody, type ProsodyOptions, type ProsodyServer } from "../../local-stack/prosody.js";
import { startRedis, type RedisServer } from "../../local-stack/redis.js";

export type Cleanup = () => unknown;

/**
 * Cleanups registered as things start, run in reverse order (last started, first stopped).
 * One failing or hanging cleanup must not keep the others from running, so errors are
 * reported and collected rather than thrown. Typical use with node:test:
 *
 *   const teardown = new Teardown();
 *   after(() => teardown.run());
 *   const redis = teardown.stopLater('redis', await startRedis());
 */
export class Teardown {
  readonly #cleanups: Array<{ name: string; fn: Cleanup }> = [];
  readonly #timeoutMs: number;
  readonly #report: (message: string) => void;

  constructor({ timeoutMs = 60_000, report = (m: string) => console.error(m) } = {}) {
    this.#timeoutMs = timeoutMs;
    this.#report = report;
  }

  add(name: string, fn: Cleanup): void {
    this.#cleanups.push({ name, fn });
  }

  /** Registers `thing.stop()` and hands `thing` back, so start and registration are one line. */
  stopLater<T extends { stop(): unknown }>(name: string, thing: T): T {
    this.add(name, () => thing.stop());
    return thing;
  }

  /** Runs every cleanup once (later calls run only ones added since); returns the errors. */
  async run(): Promise<Error[]> {
    const errors: Error[] = [];
    for (const { name, fn } of this.#cleanups.splice(0).reverse()) {
      let timer: NodeJS.Timeout | undefined;
      try {
        // A bound per cleanup: a hung stop() must not hang the whole test file.
        await Promise.race([
          Promise.resolve().then(fn),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`timed out after ${this.#timeoutMs} ms`)), this.#timeoutMs);
          }),
        ]);
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        errors.push(new Error(`cleanup "${name}" failed: ${error.message}`, { cause: error }));
        this.#report(`[teardown] cleanup "${name}" failed: ${error.stack ?? error.message}`);
      } finally {
        clearTimeout(timer);
      }
    }
    return errors;
  }
}

/** Runs `fn` with a fresh Teardown and always runs it afterwards; fn's own error wins. */
export async function withCleanup<T>(fn: (teardown: Teardown) => Promise<T>): Promise<T> {
  const teardown = new Teardown();
  try {
    return await fn(teardown);
  } finally {
    await teardown.run();
  }
}

export interface Stack {
  readonly redis: RedisServer;
  readonly prosody: ProsodyServer;
  /** Stops both, even if one of them fails to stop; then throws if either did. */
  stop(): Promise<void>;
}

async function stopBoth(redis: RedisServer | undefined, prosody: ProsodyServer | undefined): Promise<void> {
  const results = await Promise.allSettled([redis?.stop(), prosody?.stop()]);
  const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
  if (failures.length > 0) throw new AggregateError(failures, "stopping the stack failed");
}

export async function startStack(opts: { prosody?: ProsodyOptions } = {}): Promise<Stack> {
  const [r, p] = await Promise.allSettled([startRedis(), startProsody(opts.prosody)]);
  if (r.status === "rejected" || p.status === "rejected") {
    // Don't leave the half that did start running.
    await stopBoth(r.status === "fulfilled" ? r.value : undefined, p.status === "fulfilled" ? p.value : undefined).catch(() => {});
    const reasons = [r, p].flatMap((x) => (x.status === "rejected" ? [x.reason as unknown] : []));
    throw reasons.length === 1 ? reasons[0] : new AggregateError(reasons, "startStack: Redis and Prosody both failed");
  }
  const redis = r.value;
  const prosody = p.value;
  return { redis, prosody, stop: () => stopBoth(redis, prosody) };
}

/**
 * Redis and ejabberd (which lets several gateways hold one component domain), started together and stopped
 * by `teardown`, the one that started even when the other failed.
 */
export async function startEjabberdStack(teardown: Teardown): Promise<{ redis: RedisServer; ejabberd: EjabberdServer }> {
  const [r, e] = await Promise.allSettled([startRedis(), startEjabberd()]);
  if (r.status === "fulfilled") teardown.stopLater("redis", r.value);
  if (e.status === "fulfilled") teardown.stopLater("ejabberd", e.value);
  if (r.status === "rejected") throw r.reason;
  if (e.status === "rejected") throw e.reason;
  return { redis: r.value, ejabberd: e.value };
}

/**
 * Component entries for a Prosody that several gateways share, one domain each: `gateway.localhost` (the
 * default a test gateway uses), then `gw2.localhost` with secret `s2`, `gw3.localhost` with `s3`, ...
 */
export function testComponents(count: number): Array<{ domain: string; secret: string }> {
  return Array.from({ length: count }, (_, i) =>
    i === 0 ? { domain: "gateway.localhost", secret: "test-secret" } : { domain: `gw${i + 1}.localhost`, secret: `s${i + 1}` },
  );
}
