import {
  createTraceState,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type AttributeValue,
  type Context,
  type Span,
  type Tracer,
  type TracerProvider,
} from "@opentelemetry/api";
import { ATTR } from "./attributes.js";
import { boundedTracestate, formatTraceparent, parseTraceparent, type TraceFields } from "./trace-context.js";

/*
 * The one facade over @opentelemetry/api: the gateway and the device agent talk to Tracing and TraceSpan, never
 * to the API. Nothing here is global: the Tracer comes from a provider the program's composition root made
 * (sdk.ts), and a span's parent is handed over explicitly (a TraceSpan, or the W3C fields of a remote one),
 * never looked up in an active context: no context manager is installed, and the request's own objects carry
 * its span. Tracing switched off is no Tracing at all (undefined): callers test for it, and do nothing else.
 */

/** What a composition root is handed: an SDK's provider (sdk.ts), or a test's. */
export type { TracerProvider };

export type SpanKindName = "server" | "client" | "internal" | "producer";

const KINDS: Record<SpanKindName, SpanKind> = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  internal: SpanKind.INTERNAL,
  producer: SpanKind.PRODUCER,
};

export type SpanAttributes = Attributes;

/** The instrumentation scope's name and version (what the OTel data model calls the tracer's). */
export interface TracingScope {
  name: string;
  version?: string;
}

export class Tracing {
  private readonly tracer: Tracer;

  constructor(provider: TracerProvider, scope: TracingScope) {
    this.tracer = provider.getTracer(scope.name, scope.version);
  }

  /**
   * A span whose parent is the remote one `parent` names (W3C Trace Context: a client's request headers, a
   * `<req>`'s SHIM headers, a correlation record), or the root of a new trace when it names none that is
   * valid. `startTime`: a `performance.now()` reading, when the span began before it could be made.
   */
  continue(
    name: string,
    kind: SpanKindName,
    parent: Partial<TraceFields> | undefined,
    attributes?: SpanAttributes,
    startTime?: number,
  ): TraceSpan {
    const context = remoteContext(parent);
    return this.open(name, kind, context, attributes, startTime);
  }

  /** @internal A span under `context` (TraceSpan.child's way in). */
  open(name: string, kind: SpanKindName, context: Context, attributes?: SpanAttributes, startTime?: number): TraceSpan {
    const span = this.tracer.startSpan(
      name,
      { kind: KINDS[kind], ...(attributes ? { attributes } : {}), ...(startTime !== undefined ? { startTime } : {}) },
      context,
    );
    return new TraceSpan(this, span, trace.setSpan(context, span));
  }
}

/**
 * One span of ours. Ends once (later calls to `end` are ignored), so that every way out of the work it
 * covers may end it.
 */
export class TraceSpan {
  private ended = false;

  constructor(
    private readonly tracing: Tracing,
    private readonly span: Span,
    private readonly context: Context,
  ) {}

  /** A span for part of this one's work. */
  child(name: string, kind: SpanKindName, attributes?: SpanAttributes): TraceSpan {
    return this.tracing.open(name, kind, this.context, attributes);
  }

  /** The W3C fields that name this span as the parent of the next hop's. */
  get fields(): TraceFields {
    const { traceId, spanId, traceFlags, traceState } = this.span.spanContext();
    const traceparent = formatTraceparent(traceId, spanId, traceFlags);
    const tracestate = traceState?.serialize();
    return tracestate ? { traceparent, tracestate } : { traceparent };
  }

  get traceId(): string {
    return this.span.spanContext().traceId;
  }

  set(name: string, value: AttributeValue): void {
    this.span.setAttribute(name, value);
  }

  /**
   * The work failed: `errorType` is what failed it (a catalogue code, the agent's failure code), the
   * semantic conventions' `error.type`; the span's status is ERROR.
   */
  fail(errorType: string, message?: string): void {
    this.span.setAttribute(ATTR.errorType, errorType);
    this.span.setStatus(message === undefined ? { code: SpanStatusCode.ERROR } : { code: SpanStatusCode.ERROR, message });
  }

  /**
   * An HTTP answer's status code. Per the HTTP semantic conventions a SERVER span is in error from 500, a
   * CLIENT span from 400 (`errorFrom`); a status in error without another `error.type` gets the code itself.
   */
  answered(statusCode: number, errorFrom: 400 | 500, errorType?: string): void {
    this.span.setAttribute(ATTR.statusCode, statusCode);
    if (errorType !== undefined) this.span.setAttribute(ATTR.errorType, errorType);
    if (statusCode >= errorFrom) {
      if (errorType === undefined) this.span.setAttribute(ATTR.errorType, String(statusCode));
      this.span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.span.end();
  }
}

/** The context of a remote parent named by W3C fields; the root context when they name none. */
function remoteContext(parent: Partial<TraceFields> | undefined): Context {
  const parsed = parseTraceparent(parent?.traceparent);
  if (!parsed) return ROOT_CONTEXT;
  const tracestate = boundedTracestate(parent?.tracestate);
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: parsed.traceId,
    spanId: parsed.parentId,
    traceFlags: parsed.flags & 0x01,
    isRemote: true,
    ...(tracestate !== undefined ? { traceState: createTraceState(tracestate) } : {}),
  });
}
