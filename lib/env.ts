import { readFileSync } from "node:fs";

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

/**
 * A URL as it may be echoed in a message or a log line: the password of its userinfo (RFC 3986 §3.2.1,
 * which deprecates passwords in URLs for this very reason) replaced by `***`. Works on text that does not
 * parse as a URL too (a space or a bad port in it), since that is exactly when a configuration error quotes
 * it. Everything between `//` and the text's last `@` is taken as userinfo: a malformed password may hold
 * "/", "#" or "@" itself, so when an "@" follows the authority (in a path or query) more than the userinfo is
 * hidden: the line loses detail, never a secret. Userinfo without a `:` is hidden whole
 * (`https://TOKEN@host` carries a token as the user name).
 */
export function redactUrl(value: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(value)?.[0] ?? "";
  const afterScheme = value.slice(scheme.length);
  const slashes = afterScheme.startsWith("//") ? "//" : "";
  const rest = afterScheme.slice(slashes.length);
  const at = rest.lastIndexOf("@");
  if (at < 0) return value;
  const userinfo = rest.slice(0, at);
  const colon = userinfo.indexOf(":");
  const kept = colon < 0 ? "***" : `${userinfo.slice(0, colon)}:***`;
  return `${scheme}${slashes}${kept}${rest.slice(at)}`;
}

/**
 * One environment variable, described once: its kind (how it is read and validated), its default, its range
 * or rule, and a one-line doc. A program's settings are a table of these keyed by variable name (the
 * gateway's gateway/settings.ts, the agent's adapters/device-agent/settings.ts); README's configuration
 * tables show each name and default, and a unit test keeps them equal (test/unit/readme-config-table.test.ts).
 */
export type Setting =
  | IntSetting
  | OptionalIntSetting
  | DerivedIntSetting
  | StringSetting
  | DerivedStringSetting
  | OptionalSetting
  | RequiredSetting
  | UrlSetting
  | OneOfSetting
  | OptionalOneOfSetting
  | SecretSetting;

/** A rule beyond the kind's own: `ok` must hold, else the problem line says `rule`. */
export interface SettingRule {
  ok: (value: string) => boolean;
  rule: string;
}

interface SettingBase {
  /** What the setting does, in one line. */
  doc: string;
  /** How README spells the default when another module applies it (e.g. `` `required` `` for AGENT_TLS). */
  shown?: string;
}

/** A whole number from `min` to `max` (default Number.MAX_SAFE_INTEGER). */
export interface IntSetting extends SettingBase {
  kind: "int";
  default: number;
  min: number;
  max?: number;
}
/** A whole number, or absent (no default: the feature it turns on stays off). */
export interface OptionalIntSetting extends SettingBase {
  kind: "optionalInt";
  min: number;
  max?: number;
  unset: string;
}
/** A whole number whose default is another setting's value (`from`), given by the program when it reads it. */
export interface DerivedIntSetting extends SettingBase {
  kind: "derivedInt";
  from: string;
  min: number;
  max?: number;
}
export interface StringSetting extends SettingBase {
  kind: "string";
  default: string;
  check?: SettingRule;
}
/** Text whose default is computed when read (e.g. from the host name); `shown` is how README spells it, in backquotes. */
export interface DerivedStringSetting extends SettingBase {
  kind: "derivedString";
  shown: string;
}
/** Text, or absent; `unset` says what absent means (README shows it in the default column). */
export interface OptionalSetting extends SettingBase {
  kind: "optional";
  unset: string;
  check?: SettingRule;
}
/** Text that must be set (no default). */
export interface RequiredSetting extends SettingBase {
  kind: "required";
}
/** A URL with one of `protocols` (e.g. `["redis:", "rediss:"]`). */
export interface UrlSetting extends SettingBase {
  kind: "url";
  default: string;
  protocols: readonly string[];
}
export interface OneOfSetting<T extends string = string> extends SettingBase {
  kind: "oneOf";
  default: T;
  allowed: readonly T[];
}
/** One of `allowed`, or absent (`unset` says what absent means). */
export interface OptionalOneOfSetting<T extends string = string> extends SettingBase {
  kind: "optionalOneOf";
  allowed: readonly T[];
  unset: string;
}
/**
 * A secret, from the variable or from the file `NAME_FILE` names (EnvReader.secret). `required`, or absent
 * with `unset` saying what that means; a `check` problem line gives the value's length, never the value.
 */
export type SecretSetting = SettingBase & { kind: "secret"; check?: SettingRule } & (
    { required: true } | { required: false; unset: string }
  );

/** What reading a setting gives. */
export type SettingValue<S extends Setting> = S extends IntSetting | DerivedIntSetting
  ? number
  : S extends OptionalIntSetting
    ? number | undefined
    : S extends OneOfSetting<infer T>
      ? T
      : S extends OptionalOneOfSetting<infer T>
        ? T | undefined
        : S extends OptionalSetting
          ? string | undefined
          : S extends SecretSetting
            ? S extends { required: true }
              ? string
              : string | undefined
            : string;

/** What a derived setting needs when read: its default, computed by the program. */
export type SettingFallback<S extends Setting> = S extends DerivedIntSetting
  ? [fallback: number]
  : S extends DerivedStringSetting
    ? [fallback: string]
    : [];

/**
 * How README's configuration table spells a setting's default: the value in backquotes, or `(required)`, or
 * `(unset…` followed by what absent means.
 */
export function shownDefault(s: Setting): string {
  if (s.shown !== undefined) return s.shown;
  switch (s.kind) {
    case "int":
    case "string":
    case "url":
    case "oneOf":
      return `\`${s.default}\``;
    case "derivedInt":
      return `\`${s.from}\``;
    case "derivedString":
      return s.shown;
    case "optionalInt":
    case "optional":
    case "optionalOneOf":
      return s.unset === "" ? "(unset)" : `(unset: ${s.unset})`;
    case "required":
      return "(required)";
    case "secret":
      return s.required ? "(required)" : s.unset === "" ? "(unset)" : `(unset: ${s.unset})`;
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

  /**
   * A secret, from `NAME` or from the file named by `NAME_FILE` (how Docker and Kubernetes hand out
   * secrets: a mounted file keeps the value out of the process environment, which `ps e`, crash reports and
   * child processes can see). One trailing newline of the file is dropped. A problem line never quotes the
   * value, only where it came from.
   */
  secret(name: string): string | undefined {
    const direct = this.raw(name);
    const file = this.raw(`${name}_FILE`);
    if (file === undefined) return direct;
    if (direct !== undefined) {
      this.problems.push(`${name} and ${name}_FILE are both set: keep one`);
      return direct;
    }
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      this.problems.push(`${name}_FILE=${JSON.stringify(file)} cannot be read (${(err as NodeJS.ErrnoException).code ?? "error"})`);
      return undefined;
    }
    const value = text.replace(/\r?\n$/, "");
    if (value.trim() === "") {
      this.problems.push(`${name}_FILE=${JSON.stringify(file)} is empty`);
      return undefined;
    }
    return value;
  }

  /** A secret that must be set (`NAME` or `NAME_FILE`). */
  requiredSecret(name: string): string {
    const value = this.secret(name);
    if (value === undefined && !this.problems.some((p) => p.startsWith(`${name}_FILE=`) || p.startsWith(`${name} and`))) {
      this.problems.push(`${name} (or ${name}_FILE) is required`);
    }
    return value ?? "";
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
      // Redacted: a REDIS_URL that does not parse still holds its password.
      this.problems.push(
        `${name}=${JSON.stringify(redactUrl(v))} must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}`,
      );
    }
    return v;
  }

  /** One setting of a table (Setting): read, validated against its range or rule, defaulted. */
  read<S extends Setting>(name: string, s: S, ...fallback: SettingFallback<S>): SettingValue<S> {
    return this.readAny(name, s, fallback[0]) as SettingValue<S>;
  }

  private readAny(name: string, s: Setting, fallback: number | string | undefined): number | string | undefined {
    switch (s.kind) {
      case "int":
        return this.int(name, s.default, s.min, s.max);
      case "optionalInt":
        return this.raw(name) === undefined ? undefined : this.int(name, 0, s.min, s.max);
      case "derivedInt":
        return this.int(name, fallback as number, s.min, s.max);
      case "string": {
        const v = this.string(name, s.default);
        if (s.check) this.check(name, v, s.check.ok(v), s.check.rule);
        return v;
      }
      case "derivedString":
        return this.string(name, fallback as string);
      case "optional": {
        const v = this.optional(name);
        if (v !== undefined && s.check) this.check(name, v, s.check.ok(v), s.check.rule);
        return v;
      }
      case "required":
        return this.required(name);
      case "url":
        return this.url(name, s.default, s.protocols);
      case "oneOf":
        return this.oneOf(name, s.default, s.allowed);
      case "optionalOneOf":
        return this.raw(name) === undefined ? undefined : this.oneOf(name, s.allowed[0] ?? "", s.allowed);
      case "secret": {
        const v = s.required ? this.requiredSecret(name) : this.secret(name);
        // The value is a secret: the line gives its length only.
        if (v !== undefined && v !== "" && s.check && !s.check.ok(v))
          this.problems.push(`${name} (${v.length} characters) ${s.check.rule}`);
        return v;
      }
    }
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
