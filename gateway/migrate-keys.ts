import { pino } from "pino";
import { loadOrExit, type Env } from "../lib/env.js";
import { loadConfig } from "./config.js";
import { parseMigrateArgs, USAGE } from "./migrate/cli-options.js";
import { runMigration } from "./migrate/run.js";

/**
 * Process entry of `npm run migrate-keys` (README, "Redis keys, and Redis Cluster"): the target Redis is read
 * from the gateway's own environment by loadConfig, so every mode it supports works here the same way.
 */
async function main(): Promise<number> {
  const cli = parseMigrateArgs(process.argv.slice(2));
  if (cli === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if ("problem" in cli) {
    process.stderr.write(`migrate-keys: ${cli.problem}\n${USAGE}\n`);
    return 2;
  }
  const config = loadOrExit((env: Env) => loadConfig(withoutXmppSecret(env)));
  // Warnings of the Redis client (a refused connection) on stderr, apart from the counts on stdout.
  const logger = pino({ level: "warn", base: {} }, pino.destination(2));
  const { exitCode } = await runMigration(cli, config.redis, {
    logger,
    print: (line) => process.stdout.write(`${line}\n`),
    printError: (line) => process.stderr.write(`migrate-keys: ${line}\n`),
  });
  return exitCode;
}

/**
 * The gateway's environment, where the one setting the gateway requires beyond Redis (the XMPP component's
 * secret, which this command never uses) may be left out.
 */
function withoutXmppSecret(env: Env): Env {
  const given = (name: string) => (env[name] ?? "").trim() !== "";
  if (given("XMPP_COMPONENT_SECRET") || given("XMPP_COMPONENT_SECRET_FILE")) return env;
  return { ...env, XMPP_COMPONENT_SECRET: "unused-by-migrate-keys" };
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`migrate-keys: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
