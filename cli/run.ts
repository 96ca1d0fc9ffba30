// One run of `gatewayctl`: the command line and environment in, an exit status out (0 done, 1 the gateway
// refused or failed, 2 a usage error; docs/admin-api.md, "The command-line client").
import { setTimeout as sleep } from "node:timers/promises";
import { EnvReader, isUrlWith, type Env } from "../lib/env.js";
import { AdminClient, GatewayApiError, GatewayUnreachable, UnexpectedAnswer } from "./api-client.js";
import { parseInvocation, UsageError, type Command } from "./args.js";
import { cellText } from "./table.js";
import type { CommandContext, OutputStream } from "./context.js";
import type { ProgressStream } from "./progress.js";
import { cutover } from "./commands/cutover.js";
import { get, set } from "./commands/device.js";
import { list } from "./commands/list.js";
import { status } from "./commands/status.js";
import { getWave, listWaves, rollbackWave, startWave } from "./commands/wave.js";
import { USAGE } from "./usage.js";

export const DEFAULT_URL = "http://localhost:8080";

export interface RunIo {
  stdout: OutputStream;
  stderr: ProgressStream;
  env: Env;
}

export async function run(argv: readonly string[], io: RunIo): Promise<number> {
  try {
    const invocation = parseInvocation(argv);
    if (invocation.command.kind === "help") {
      io.stdout.write(USAGE);
      return 0;
    }
    const baseUrl = invocation.url ?? new EnvReader(io.env).string("GATEWAY_URL", DEFAULT_URL);
    if (!isUrlWith(baseUrl, ["http:", "https:"])) {
      throw new UsageError(`the gateway's URL must be http:// or https:// (${invocation.url === undefined ? "GATEWAY_URL" : "--url"})`);
    }
    const ctx: CommandContext = {
      client: new AdminClient({ baseUrl, token: tokenOf(io.env) }),
      stdout: io.stdout,
      stderr: io.stderr,
      json: invocation.json,
      sleep: (ms) => sleep(ms),
    };
    return await dispatch(ctx, invocation.command);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${err.message}\n${err.showUsage ? `\n${USAGE}` : ""}`);
      return 2;
    }
    if (err instanceof GatewayApiError) {
      const field = err.field === undefined ? "" : ` (field: ${cellText(err.field)})`;
      io.stderr.write(`error: ${cellText(err.code)}: ${cellText(err.message)}${field}\n`);
      return 1;
    }
    if (err instanceof GatewayUnreachable || err instanceof UnexpectedAnswer) {
      io.stderr.write(`error: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function dispatch(ctx: CommandContext, command: Exclude<Command, { kind: "help" }>): Promise<number> {
  switch (command.kind) {
    case "list":
      return list(ctx, command);
    case "get":
      return get(ctx, command.id);
    case "set":
      return set(ctx, command.id, command.changes);
    case "cutover":
      return cutover(ctx, command);
    case "wave-start":
      return startWave(ctx, command.request);
    case "wave-list":
      return listWaves(ctx);
    case "wave-get":
      return getWave(ctx, command.id, command.watch, command.intervalMs);
    case "wave-rollback":
      return rollbackWave(ctx, command.id);
    case "status":
      return status(ctx);
  }
}

/** GATEWAY_ADMIN_TOKEN, or the file GATEWAY_ADMIN_TOKEN_FILE names (read as the gateway reads its own). */
export function tokenOf(env: Env): string {
  const reader = new EnvReader(env);
  const token = reader.secret("GATEWAY_ADMIN_TOKEN");
  if (reader.problems.length > 0) throw new UsageError(reader.problems.join("; "), false);
  if (token === undefined) {
    throw new UsageError("no admin token: set GATEWAY_ADMIN_TOKEN, or GATEWAY_ADMIN_TOKEN_FILE naming a file that holds it", false);
  }
  return token;
}
