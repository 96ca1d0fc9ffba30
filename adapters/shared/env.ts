/**
 * Typed readers for environment variables. Each bad value becomes one line naming the variable, and all of
 * them are reported together, so an operator fixes a deployment in one round.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** True when `value` parses as a URL with one of these protocols (e.g. `["http:", "https:"]`). */
export function isUrlWith(value: string, protocols: readonly string[]): boolean {
  try {
    return protocols.includes(new URL(value).protocol);
  } catch {
    return false;
  }
}

export class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const v = this.env[name];
    return v === undefined || v.trim() === "" ? undefined : v.trim();
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  required(name: string): string {
    const v = this.raw(name);
    if (v === undefined) this.problems.push(`${name} is required`);
    return v ?? "";
  }

  optional(name: string): string | undefined {
    return this.raw(name);
  }

  int(name: string, fallback: number, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) {
      this.problems.push(`${name}=${JSON.stringify(v)} must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return Number(v);
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const v = this.raw(name);
    if (v === undefined) return fallback;
    if (!(allowed as readonly string[]).includes(v)) {
      this.problems.push(`${name}=${JSON.stringify(v)} must be one of ${allowed.join(", ")}`);
      return fallback;
    }
    return v as T;
  }

  url(name: string, fallback: string, protocols: readonly string[]): string {
    const v = this.raw(name) ?? fallback;
    if (!isUrlWith(v, protocols)) {
      this.problems.push(`${name}=${JSON.stringify(v)} must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}`);
    }
    return v;
  }

  check(name: string, value: string, ok: boolean, rule: string): void {
    if (!ok) this.problems.push(`${name}=${JSON.stringify(value)} ${rule}`);
  }

  done(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

/**
 * For process entry points: the configuration, or one `config: …` line per problem on stderr and exit
 * code 2, so a bad deployment says exactly what to fix.
 */
export function loadOrExit<T>(load: (env: Env) => T, env: Env = process.env): T {
  try {
    return load(env);
  } catch (err) {
    if (err instanceof ConfigError) exitWithConfigError(err);
    throw err;
  }
}

/** One `config: …` line per problem, exit code 2: for configuration found bad later (files read at start). */
export function exitWithConfigError(err: ConfigError): never {
  for (const problem of err.problems) process.stderr.write(`config: ${problem}\n`);
  process.exit(2);
}
