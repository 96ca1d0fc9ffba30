// When tracing is on (lib/tracing/settings.ts): only when the standard OTEL_ variables ask for it, with
// OTEL_SDK_DISABLED=true winning, and where the spans go.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { EnvReader, type Env } from "../../lib/env.js";
import { readTracingConfig, tracingSettings, type TracingConfig } from "../../lib/tracing/settings.js";

const SETTINGS = tracingSettings("svc");

function read(env: Env): { config: TracingConfig | undefined; problems: string[] } {
  const r = new EnvReader(env);
  const config = readTracingConfig(r, SETTINGS, "svc");
  return { config, problems: r.problems };
}

describe("tracing configuration", () => {
  it("is off without OTEL_ variables", () => assert.deepEqual(read({}), { config: undefined, problems: [] }));

  it("is on with an endpoint, traces under its /v1/traces, protobuf by default", () => {
    assert.deepEqual(read({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318/" }).config, {
      serviceName: "svc",
      url: "http://collector:4318/v1/traces",
      protocol: "http/protobuf",
    });
  });

  it("uses a traces endpoint as it is, and the traces protocol over the general one", () => {
    const { config } = read({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://ignored:4318",
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "https://collector/custom/path",
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "gateway-eu-1",
    });
    assert.deepEqual(config, { serviceName: "gateway-eu-1", url: "https://collector/custom/path", protocol: "http/json" });
  });

  it("is on with OTEL_TRACES_EXPORTER=otlp alone, at the default local endpoint", () => {
    assert.equal(read({ OTEL_TRACES_EXPORTER: "otlp" }).config?.url, "http://localhost:4318/v1/traces");
  });

  it("is off with OTEL_TRACES_EXPORTER=none, or OTEL_SDK_DISABLED=true, whatever else is set", () => {
    assert.equal(read({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://c:4318" }).config, undefined);
    assert.equal(read({ OTEL_SDK_DISABLED: "true", OTEL_TRACES_EXPORTER: "otlp" }).config, undefined);
    assert.equal(read({ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://c:4318/v1/traces" }).config, undefined);
  });

  it("refuses what it cannot export with, naming the variable", () => {
    const { problems } = read({
      OTEL_TRACES_EXPORTER: "zipkin",
      OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
      OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318",
      OTEL_SDK_DISABLED: "yes",
    });
    assert.equal(problems.length, 4, problems.join("\n"));
    for (const name of ["OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"])
      assert.ok(
        problems.some((p) => p.startsWith(`${name}=`)),
        `a problem names ${name}: ${problems.join("; ")}`,
      );
  });
});
