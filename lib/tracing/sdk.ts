import type { TracerProvider } from "@opentelemetry/api";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtobufExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { detectResources, envDetector, resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { RESOURCE_ATTR } from "./attributes.js";
import type { TracingConfig } from "./settings.js";

/** A tracer provider of the OpenTelemetry SDK, and its end: what is still batched is exported first. */
export interface TracingSdk {
  provider: TracerProvider;
  shutdown(): Promise<void>;
}

export interface ServiceIdentity {
  version?: string;
  /** service.instance.id: which instance of the service wrote a span (the gateway's GATEWAY_INSTANCE_ID). */
  instanceId?: string;
}

/**
 * The SDK as a program's entry point sets it up when its OTEL_ variables ask for tracing (settings.ts): spans
 * batched and exported over OTLP/HTTP, in protobuf or JSON, to the configured URL. The one file that imports
 * the SDK's packages. Nothing is registered globally (no global provider, context manager or propagator):
 * the provider goes to the program's composition root, which hands it to the parts that trace.
 *
 * The resource: service.name from the configuration (OTEL_SERVICE_NAME or the program's name), its version
 * and instance, then what the operator set over them (the SDK's environment detector: OTEL_RESOURCE_ATTRIBUTES,
 * and OTEL_SERVICE_NAME over a service.name there, as OpenTelemetry's specification orders them). The batch
 * processor reads OTEL_BSP_*, the exporter OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT and _COMPRESSION, the
 * provider OTEL_TRACES_SAMPLER(_ARG), as the SDK documents.
 */
export function startTracingSdk(config: TracingConfig, identity: ServiceIdentity = {}): TracingSdk {
  const own = resourceFromAttributes({
    [RESOURCE_ATTR.serviceName]: config.serviceName,
    ...(identity.version !== undefined ? { [RESOURCE_ATTR.serviceVersion]: identity.version } : {}),
    ...(identity.instanceId !== undefined ? { [RESOURCE_ATTR.serviceInstanceId]: identity.instanceId } : {}),
  });
  const resource = own.merge(detectResources({ detectors: [envDetector] }));
  const exporter = config.protocol === "http/json" ? new JsonExporter({ url: config.url }) : new ProtobufExporter({ url: config.url });
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  return { provider, shutdown: () => provider.shutdown() };
}
