// What every command is handed: the client, the two output streams, and whether JSON was asked for.
import type { AdminClient } from "./api-client.js";
import type { ProgressStream } from "./progress.js";

export interface OutputStream {
  write(text: string): unknown;
}

export interface CommandContext {
  client: AdminClient;
  stdout: OutputStream;
  /** Progress lines and notes, kept off stdout so `--json` output can be piped as it is. */
  stderr: ProgressStream;
  json: boolean;
  /** Waits between polls (`wave get --watch`); replaceable so nothing else in a command depends on timers. */
  sleep(ms: number): Promise<void>;
}

export function printJson(ctx: CommandContext, value: unknown): void {
  ctx.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printText(ctx: CommandContext, text: string): void {
  if (text !== "") ctx.stdout.write(`${text}\n`);
}

/** `1234` as `1,234`: counts of thousands of devices read at a glance. */
export function count(n: number): string {
  return n.toLocaleString("en-US");
}
