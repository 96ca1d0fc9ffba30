import { pino, type Logger } from "pino";

export type { Logger };

/**
 * One JSON line per event (pino). Secrets never reach the logger: the component secret and passwords are not
 * passed in any log call, and `redact` is a second line of defence for header-shaped fields.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: {},
    redact: { paths: ["req.headers.authorization", "*.password", "*.secret"], censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}
