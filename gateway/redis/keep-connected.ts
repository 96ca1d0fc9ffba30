import type { Logger } from "../log.js";
import type { RedisClient } from "./client.js";

/**
 * Connects `connection` again whenever ioredis ends it without having been told to. ioredis gives a connection
 * up for good ("end") when a connect attempt is aborted, and in Sentinel mode one is: the failover detector of
 * the connection that was lost still listens for +switch-master, and when the promotion is announced while the
 * client is between two rounds of asking the Sentinels for the primary, it disconnects the connector and the
 * round under way fails with "Connection is closed." (ioredis 5, SentinelConnector.connect and
 * FailoverDetector.disconnect). The instance then stayed unready until restarted; test/e2e/redis-sentinel.test.ts
 * met it about one failover in ten on a loaded machine. `stop()` before closing the connection on purpose.
 */
export function keepConnected(connection: RedisClient, log: Logger, delayMs: () => number): { stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const onEnd = (): void => {
    if (stopped) return;
    const delay = delayMs();
    log.warn({ event: "ended", retryInMs: delay }, "redis connection given up by the client: connecting again");
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (stopped || connection.status !== "end") return;
      // A failure ends it again, and so comes back here.
      connection.connect().catch(() => undefined);
    }, delay);
  };
  connection.on("end", onEnd);
  return {
    stop: () => {
      stopped = true;
      clearTimeout(timer);
      connection.off("end", onEnd);
    },
  };
}
