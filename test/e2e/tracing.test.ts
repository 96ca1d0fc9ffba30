// OpenTelemetry tracing end to end (README, "Tracing"), with the SDK's in-memory exporter: real Redis, Prosody,
// gateways and device agent in this process, each with its own tracer provider (so that nothing crosses
// between them but what crosses in production: HTTP headers, the <req>'s SHIM headers, the correlation record
// in Redis), and real HTTP servers as the devices.
//
// One component domain is taken over kick_old-style: the last test starts instance B on it, so that the
// device's reply reaches B while A holds the client, as in a rolling replacement. An untraced gateway on a
// second domain shows that with tracing off the device's request is what it always was.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { after, before, describe, it } from "node:test";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { DeviceAgent } from "../../adapters/device-agent/agent.js";
import { parseTraceparent } from "../../lib/tracing/trace-context.js";
import { Tracing } from "../../lib/tracing/tracing.js";
import { pollUntil } from "../../local-stack/ports.js";
import { agentOptions } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startDeviceServer } from "../helpers/http-device.js";
import { startStack, Teardown, testComponents, type Stack } from "../helpers/stack.js";

/** A tracer provider whose spans are kept in memory, one per process part (gateway A, B, the agent). */
function memoryTracer(): { provider: BasicTracerProvider; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  return { exporter, provider: new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }) };
}

const quiet = { info: () => undefined, warn: () => undefined };
const CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN = "b7ad6b7169203331";

function spanId(span: ReadableSpan): string {
  return span.spanContext().spanId;
}
function traceOf(span: ReadableSpan): string {
  return span.spanContext().traceId;
}
function parentOf(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

/** Waits for the one finished span of `exporter` in trace `traceId` that `match` picks (the server span ends with the response's `close`, after the client has it). */
async function spanIn(
  exporter: InMemorySpanExporter,
  traceId: string,
  what: string,
  match: (s: ReadableSpan) => boolean,
): Promise<ReadableSpan> {
  return pollUntil(
    `span ${what} in trace ${traceId}`,
    () => {
      const found = exporter.getFinishedSpans().filter((s) => traceOf(s) === traceId && match(s));
      assert.ok(found.length <= 1, `one ${what} span, not ${found.length}`);
      return found[0];
    },
    { timeoutMs: 10_000, intervalMs: 10 },
  );
}

const named = (name: string, kind: SpanKind) => (s: ReadableSpan) => s.name === name && s.kind === kind;

describe("tracing", () => {
  const teardown = new Teardown();
  let stack: Stack;
  const traced = memoryTracer();
  const other = memoryTracer();
  const agentTracer = memoryTracer();
  let a: RunningGateway;
  let plain: RunningGateway;
  const prefix = `trace-${randomBytes(3).toString("hex")}:`;
  /** What each device's HTTP server was sent, by path. */
  const seen = new Map<string, IncomingHttpHeaders>();
  const held: ServerResponse[] = [];
  const second = testComponents(2)[1] as { domain: string; secret: string };

  const device = (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    seen.set(req.url ?? "", req.headers);
    if (req.url?.startsWith("/hold")) held.push(res);
    else if (req.url === "/missing") res.writeHead(404).end("no such thing");
    else res.end(`answer to ${req.url}`);
  };

  async function startAgent(id: string, localUrl: string, gatewayJid: string, tracing?: Tracing): Promise<DeviceAgent> {
    await stack.prosody.createUsers([{ username: id, password: `pw-${id}` }]);
    const agent = new DeviceAgent(agentOptions(stack.prosody, id, localUrl, { gatewayJid }), {
      log: quiet,
      ...(tracing ? { tracing } : {}),
    });
    teardown.stopLater(`agent ${id}`, agent);
    await agent.start();
    await agent.waitOnline(30_000);
    return agent;
  }

  before(async () => {
    stack = teardown.stopLater(
      "stack",
      await startStack({
        prosody: { components: [{ domain: "gateway.localhost", secret: "test-secret", conflictResolve: "kick_old" }, second] },
      }),
    );
    a = teardown.stopLater(
      "gateway A",
      await startGateway(stack, { REDIS_KEY_PREFIX: prefix, GATEWAY_INSTANCE_ID: "a" }, { tracerProvider: traced.provider }),
    );
    plain = teardown.stopLater(
      "untraced gateway",
      await startGateway(stack, { XMPP_COMPONENT_DOMAIN: second.domain, XMPP_COMPONENT_SECRET: second.secret }),
    );
    const server = teardown.stopLater("device server", await startDeviceServer(device));
    const agentTracing = new Tracing(agentTracer.provider, { name: "device-agent" });
    await startAgent("trace-dev", server.url, "gateway.localhost", agentTracing);
    await startAgent("plain-dev", server.url, second.domain);
    await a.gateway.registry.put({ id: "legacy-dev", transport: "http", httpTarget: server.url });
  });
  after(async () => {
    for (const res of held.splice(0)) res.end();
    await teardown.run();
  });

  it("continues the client's trace: server span, exchange span, the agent's spans, and the device's traceparent", async () => {
    const res = await fetch(`${a.url}/devices/trace-dev/xmpp-one?secret=1`, {
      headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: "vendor=abc" },
    });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "answer to /xmpp-one?secret=1");

    const server = await spanIn(traced.exporter, CLIENT_TRACE, "server", (s) => s.kind === SpanKind.SERVER);
    assert.equal(server.name, "GET");
    assert.equal(parentOf(server), CLIENT_SPAN, "the client's span is the server span's parent");
    assert.equal(server.parentSpanContext?.isRemote, true);
    assert.equal(server.attributes["http.request.method"], "GET");
    assert.equal(server.attributes["url.path"], "/devices/trace-dev/xmpp-one", "the path, never the query");
    assert.equal(server.attributes["http.response.status_code"], 200);
    assert.equal(server.attributes["gateway.device.id"], "trace-dev");
    assert.equal(server.attributes["gateway.transport"], "xmpp");
    assert.equal(server.status.code, SpanStatusCode.UNSET);

    const exchange = await spanIn(traced.exporter, CLIENT_TRACE, "exchange", named("xmpp exchange", SpanKind.CLIENT));
    assert.equal(parentOf(exchange), spanId(server));
    assert.equal(exchange.attributes["url.path"], "/xmpp-one");
    assert.equal(exchange.attributes["http.response.status_code"], 200);
    for (const name of ["registry resolve", "device slot"]) {
      const child = await spanIn(traced.exporter, CLIENT_TRACE, name, named(name, SpanKind.INTERNAL));
      assert.equal(parentOf(child), spanId(server), `${name} is the server span's child`);
    }

    const agentSpan = await spanIn(agentTracer.exporter, CLIENT_TRACE, "agent", named("device agent", SpanKind.SERVER));
    assert.equal(parentOf(agentSpan), spanId(exchange), "the agent continues from the exchange span (the <req>'s traceparent)");
    const local = await spanIn(agentTracer.exporter, CLIENT_TRACE, "local call", named("GET", SpanKind.CLIENT));
    assert.equal(parentOf(local), spanId(agentSpan));
    assert.equal(local.attributes["http.response.status_code"], 200);

    const sent = seen.get("/xmpp-one?secret=1");
    const parent = parseTraceparent(sent?.traceparent as string | undefined);
    assert.deepEqual(parent, { traceId: CLIENT_TRACE, parentId: spanId(local), flags: 1 }, "the device's parent is the agent's call");
    assert.equal(sent?.tracestate, "vendor=abc", "tracestate goes along");
  });

  it("starts a trace for a request without traceparent, one trace from the client's side to the device", async () => {
    const res = await fetch(`${a.url}/devices/trace-dev/xmpp-new`);
    assert.equal(res.status, 200);
    await res.text();
    const sent = parseTraceparent(seen.get("/xmpp-new")?.traceparent as string | undefined);
    assert.ok(sent, "the device gets a traceparent");
    const server = await spanIn(traced.exporter, sent.traceId, "server", (s) => s.kind === SpanKind.SERVER);
    assert.equal(server.parentSpanContext, undefined, "a root span");
    const agentSpans = agentTracer.exporter.getFinishedSpans().filter((s) => traceOf(s) === sent.traceId);
    assert.equal(agentSpans.length, 2, "the agent's two spans are in the gateway's trace");
  });

  it("starts a new trace for a traceparent it may not continue", async () => {
    const bad = `00-${CLIENT_TRACE.toUpperCase()}-${CLIENT_SPAN}-01`;
    const res = await fetch(`${a.url}/devices/trace-dev/xmpp-bad`, { headers: { traceparent: bad } });
    assert.equal(res.status, 200);
    await res.text();
    const sent = parseTraceparent(seen.get("/xmpp-bad")?.traceparent as string | undefined);
    assert.ok(sent);
    assert.notEqual(sent.traceId, CLIENT_TRACE);
    const server = await spanIn(traced.exporter, sent.traceId, "server", (s) => s.kind === SpanKind.SERVER);
    assert.equal(server.parentSpanContext, undefined);

    // Two traceparent fields are an invalid one (W3C Trace Context §3.2); a tracestate past 512 characters is dropped.
    const twice = new Headers();
    twice.append("traceparent", `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`);
    twice.append("traceparent", `00-${CLIENT_TRACE}-${CLIENT_SPAN}-00`);
    const again = await fetch(`${a.url}/devices/trace-dev/xmpp-twice`, { headers: twice });
    assert.equal(again.status, 200);
    await again.text();
    assert.notEqual(parseTraceparent(seen.get("/xmpp-twice")?.traceparent as string | undefined)?.traceId, CLIENT_TRACE);
    const long = await fetch(`${a.url}/devices/trace-dev/xmpp-long-state`, {
      headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: `v=${"x".repeat(600)}` },
    });
    assert.equal(long.status, 200);
    await long.text();
    assert.equal(parseTraceparent(seen.get("/xmpp-long-state")?.traceparent as string | undefined)?.traceId, CLIENT_TRACE);
    assert.equal(seen.get("/xmpp-long-state")?.tracestate, undefined);
  });

  it("marks a 5xx answer ERROR with its catalogue code, and a device's 4xx only on the exchange span", async () => {
    const trace = randomBytes(16).toString("hex");
    const offline = await fetch(`${a.url}/devices/nobody-home/x`, { headers: { traceparent: `00-${trace}-${CLIENT_SPAN}-01` } });
    assert.equal(offline.status, 503);
    await offline.text();
    const server = await spanIn(traced.exporter, trace, "server", (s) => s.kind === SpanKind.SERVER);
    assert.equal(server.status.code, SpanStatusCode.ERROR);
    assert.equal(server.attributes["error.type"], "GW_DEVICE_OFFLINE");
    assert.equal(server.attributes["http.response.status_code"], 503);
    const exchange = await spanIn(traced.exporter, trace, "exchange", named("xmpp exchange", SpanKind.CLIENT));
    assert.equal(exchange.status.code, SpanStatusCode.ERROR);
    assert.equal(exchange.attributes["error.type"], "GW_DEVICE_OFFLINE");

    const missingTrace = randomBytes(16).toString("hex");
    const missing = await fetch(`${a.url}/devices/trace-dev/missing`, { headers: { traceparent: `00-${missingTrace}-${CLIENT_SPAN}-01` } });
    assert.equal(missing.status, 404);
    await missing.text();
    const answered = await spanIn(traced.exporter, missingTrace, "server", (s) => s.kind === SpanKind.SERVER);
    assert.equal(answered.status.code, SpanStatusCode.UNSET, "a 4xx is not the server's error");
    const asked = await spanIn(traced.exporter, missingTrace, "exchange", named("xmpp exchange", SpanKind.CLIENT));
    assert.equal(asked.status.code, SpanStatusCode.ERROR, "a client span is in error from 400");
  });

  it("traces the pass-through: a CLIENT span whose context the legacy device gets as traceparent", async () => {
    const res = await fetch(`${a.url}/devices/legacy-dev/pass`, { headers: { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01` } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "answer to /pass");
    const sent = parseTraceparent(seen.get("/pass")?.traceparent as string | undefined);
    assert.equal(sent?.traceId, CLIENT_TRACE, "the legacy device's traceparent is in the client's trace");
    assert.notEqual(sent?.parentId, CLIENT_SPAN, "the client's own traceparent is not forwarded");
    const pass = await spanIn(traced.exporter, CLIENT_TRACE, "pass-through", named("http pass-through", SpanKind.CLIENT));
    assert.equal(sent?.parentId, spanId(pass));
    assert.equal(pass.attributes["http.response.status_code"], 200);
    assert.equal(pass.attributes["server.address"], "127.0.0.1");
    const server = await spanIn(
      traced.exporter,
      CLIENT_TRACE,
      "pass-through server",
      (s) => s.kind === SpanKind.SERVER && s.attributes["gateway.transport"] === "http",
    );
    assert.equal(parentOf(pass), spanId(server));
  });

  it("adds nothing when tracing is off: no traceparent made up, and the client's passed as it is", async () => {
    const res = await fetch(`${plain.url}/devices/plain-dev/untraced`);
    assert.equal(res.status, 200);
    await res.text();
    const sent = seen.get("/untraced");
    assert.ok(sent);
    assert.equal(sent.traceparent, undefined);
    assert.equal(sent.tracestate, undefined);

    const own = `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`;
    const withOwn = await fetch(`${plain.url}/devices/plain-dev/untraced-own`, { headers: { traceparent: own } });
    assert.equal(withOwn.status, 200);
    await withOwn.text();
    assert.equal(seen.get("/untraced-own")?.traceparent, own);
  });

  // Last: B takes the component domain over from A (kick_old), so A stays off XMPP from here on.
  it("keeps one trace when the reply reaches another instance: B's forwarding is a child of A's exchange span", async () => {
    const trace = randomBytes(16).toString("hex");
    const answer = fetch(`${a.url}/devices/trace-dev/hold-cross`, { headers: { traceparent: `00-${trace}-${CLIENT_SPAN}-01` } });
    await pollUntil("the device holds the request", () => held.length === 1, { timeoutMs: 10_000 });
    const b = teardown.stopLater(
      "gateway B",
      await startGateway(stack, { REDIS_KEY_PREFIX: prefix, GATEWAY_INSTANCE_ID: "b" }, { tracerProvider: other.provider }),
    );
    await pollUntil("A replaced on the component domain", () => !a.gateway.component.online, { timeoutMs: 10_000 });
    held.shift()?.end("held answer");
    const res = await answer;
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "held answer");

    const exchange = await spanIn(traced.exporter, trace, "exchange", named("xmpp exchange", SpanKind.CLIENT));
    const forward = await spanIn(other.exporter, trace, "forward on B", named("reply forward", SpanKind.PRODUCER));
    assert.equal(parentOf(forward), spanId(exchange), "B's span continues A's exchange span, named in the correlation record");
    assert.equal(forward.attributes["gateway.exchange.owner"], "a");
    assert.equal(forward.status.code, SpanStatusCode.UNSET);
    const server = await spanIn(traced.exporter, trace, "server", (s) => s.kind === SpanKind.SERVER);
    assert.equal(parentOf(exchange), spanId(server));
    assert.equal(server.attributes["http.response.status_code"], 200);
    // The device's side of the same trace: the agent continued A's exchange span, and answered to B.
    const agentSpan = await spanIn(agentTracer.exporter, trace, "agent", named("device agent", SpanKind.SERVER));
    assert.equal(parentOf(agentSpan), spanId(exchange), "the agent's span is in the trace, under A's exchange span");
    assert.equal(parseTraceparent(seen.get("/hold-cross")?.traceparent as string | undefined)?.traceId, trace);
    assert.equal((await b.gateway.metrics.repliesForwarded.get()).values.find((v) => v.labels.kind === "iq")?.value, 1);
  });
});
