import { isUrlWith, type EnvReader, type Setting } from "../env.js";

/** The OTLP protocols this program exports with (OTLP/HTTP; gRPC is not among them). */
export const OTLP_PROTOCOLS = ["http/protobuf", "http/json"] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** What the SDK is set up with, when tracing is on (sdk.ts). */
export interface TracingConfig {
  /** OTEL_SERVICE_NAME, or the program's own name. */
  serviceName: string;
  /** Where spans are sent: the traces endpoint itself (`…/v1/traces`). */
  url: string;
  protocol: OtlpProtocol;
}

const HTTP_URL = { ok: (v: string) => isUrlWith(v, ["http:", "https:"]), rule: "must be an http:// or https:// URL" };

/** The OTLP/HTTP default endpoint (OpenTelemetry's exporter specification), when only OTEL_TRACES_EXPORTER=otlp is set. */
export const DEFAULT_OTLP_ENDPOINT = "http://localhost:4318";

/**
 * The standard OpenTelemetry variables this program reads itself, as settings of its table (the gateway's
 * and the agent's both spread this in). Tracing is on only when they ask for it: OTEL_TRACES_EXPORTER=otlp,
 * or an OTLP endpoint set without OTEL_TRACES_EXPORTER; OTEL_SDK_DISABLED=true wins over both. The SDK's own
 * variables (OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_…) are read
 * by the SDK itself (README, "Tracing").
 */
export function tracingSettings(serviceName: string) {
  return {
    OTEL_SDK_DISABLED: {
      kind: "oneOf",
      default: "false",
      allowed: ["false", "true"],
      doc: "true: no tracing, whatever the other OTEL_ variables say",
    },
    OTEL_TRACES_EXPORTER: {
      kind: "optionalOneOf",
      allowed: ["otlp", "none"],
      unset: "otlp when an OTLP endpoint is set, else none",
      doc: "otlp: spans exported over OTLP/HTTP; none: no tracing",
    },
    OTEL_EXPORTER_OTLP_ENDPOINT: {
      kind: "optional",
      unset: "",
      check: HTTP_URL,
      doc: "OTLP/HTTP collector base URL; traces go to its /v1/traces",
    },
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: {
      kind: "optional",
      unset: "",
      check: HTTP_URL,
      doc: "OTLP/HTTP traces URL, used as it is (wins over OTEL_EXPORTER_OTLP_ENDPOINT)",
    },
    OTEL_EXPORTER_OTLP_PROTOCOL: {
      kind: "oneOf",
      default: "http/protobuf",
      allowed: OTLP_PROTOCOLS,
      doc: "http/protobuf or http/json",
    },
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: {
      kind: "optionalOneOf",
      allowed: OTLP_PROTOCOLS,
      unset: "OTEL_EXPORTER_OTLP_PROTOCOL",
      doc: "the traces' protocol (wins over OTEL_EXPORTER_OTLP_PROTOCOL)",
    },
    OTEL_SERVICE_NAME: { kind: "derivedString", shown: `\`${serviceName}\``, doc: "service.name of every span" },
  } as const satisfies Record<string, Setting>;
}

type TracingSettings = ReturnType<typeof tracingSettings>;

/** The tracing configuration from the environment: undefined when tracing is off (see tracingSettings). */
export function readTracingConfig(r: EnvReader, settings: TracingSettings, serviceName: string): TracingConfig | undefined {
  const disabled = r.read("OTEL_SDK_DISABLED", settings.OTEL_SDK_DISABLED) === "true";
  const exporter = r.read("OTEL_TRACES_EXPORTER", settings.OTEL_TRACES_EXPORTER);
  const endpoint = r.read("OTEL_EXPORTER_OTLP_ENDPOINT", settings.OTEL_EXPORTER_OTLP_ENDPOINT);
  const tracesEndpoint = r.read("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const protocol =
    r.read("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", settings.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) ??
    r.read("OTEL_EXPORTER_OTLP_PROTOCOL", settings.OTEL_EXPORTER_OTLP_PROTOCOL);
  const name = r.read("OTEL_SERVICE_NAME", settings.OTEL_SERVICE_NAME, serviceName);
  const on = exporter === "otlp" || (exporter === undefined && (endpoint !== undefined || tracesEndpoint !== undefined));
  if (disabled || !on) return undefined;
  return { serviceName: name, url: tracesEndpoint ?? tracesUrl(endpoint ?? DEFAULT_OTLP_ENDPOINT), protocol };
}

/** OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: the signal's path is appended (OpenTelemetry's exporter specification). */
function tracesUrl(base: string): string {
  return `${base.replace(/\/+$/, "")}/v1/traces`;
}
