// Tracing as operators turn it on (README, "Tracing"): a gateway process and a device agent process, each
// configured by the standard OTEL_ variables only, exporting to a real OTLP/HTTP receiver (a server in this
// test that takes POST /v1/traces). The gateway sends OTLP/JSON (OTEL_EXPORTER_OTLP_PROTOCOL=http/json), which
// the receiver decodes; the agent the default, OTLP/protobuf, in which the receiver finds the trace's id.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { freePort, pollUntil } from "../../local-stack/ports.js";
import { spawnChild } from "../../local-stack/process.js";
import { startGatewayProcess, type GatewayProcess } from "../helpers/gateway-process.js";
import { startDeviceServer } from "../helpers/http-device.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const TSX = ["--import", "tsx"];

/** One OTLP/JSON span, as much of it as this test reads (ids in hex: the OTLP/JSON encoding). */
interface JsonSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
}
interface JsonExport {
  resourceSpans: Array<{
    resource?: { attributes?: Array<{ key: string; value: { stringValue?: string } }> };
    scopeSpans: Array<{ spans: JsonSpan[] }>;
  }>;
}

/** OTLP's SpanKind: SPAN_KIND_SERVER, SPAN_KIND_CLIENT. */
const SERVER = 2;
const CLIENT = 3;

/** An OTLP/HTTP receiver: what was posted to /v1/traces, JSON decoded, protobuf kept as bytes. */
async function startReceiver() {
  const json: Array<{ serviceName: string | undefined; span: JsonSpan }> = [];
  const protobuf: Buffer[] = [];
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      if (req.method !== "POST" || req.url !== "/v1/traces") {
        res.writeHead(404).end();
        return;
      }
      const body = Buffer.concat(parts);
      const type = req.headers["content-type"] ?? "";
      if (type.startsWith("application/json")) {
        const posted = JSON.parse(body.toString("utf8")) as JsonExport;
        for (const rs of posted.resourceSpans) {
          const serviceName = rs.resource?.attributes?.find((a) => a.key === "service.name")?.value.stringValue;
          for (const ss of rs.scopeSpans) for (const span of ss.spans) json.push({ serviceName, span });
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      } else if (type.startsWith("application/x-protobuf")) {
        protobuf.push(body);
        res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      } else {
        res.writeHead(415).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    json,
    protobuf,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

describe("tracing exported over OTLP/HTTP by the gateway and agent processes", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let gateway: GatewayProcess;
  const seen = new Map<string, string | undefined>();

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    receiver = teardown.stopLater("OTLP receiver", await startReceiver());
    gateway = teardown.stopLater(
      "gateway process",
      await startGatewayProcess(stack, {
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
        OTEL_SERVICE_NAME: "gateway-under-test",
        // Batches leave every 100 ms rather than every 5 s (the SDK's own variable).
        OTEL_BSP_SCHEDULE_DELAY: "100",
      }),
    );
    const device = teardown.stopLater(
      "device",
      await startDeviceServer((req, res) => {
        req.resume();
        seen.set(req.url ?? "", req.headers.traceparent as string | undefined);
        res.end("ok");
      }),
    );
    await stack.prosody.createUsers([{ username: "otlp-dev", password: "pw-otlp-dev" }]);
    teardown.stopLater(
      "agent process",
      await spawnChild(process.execPath, [...TSX, "adapters/device-agent/main.ts"], {
        name: "agent-otlp-dev",
        env: {
          AGENT_SERVICE: stack.prosody.service,
          AGENT_DOMAIN: stack.prosody.vhost,
          AGENT_USERNAME: "otlp-dev",
          AGENT_PASSWORD: "pw-otlp-dev",
          AGENT_LOCAL_URL: device.url,
          AGENT_GATEWAY_JID: "gateway.localhost",
          AGENT_SASL_MECHANISM: "PLAIN",
          LOG_LEVEL: "warn",
          OTEL_TRACES_EXPORTER: "otlp",
          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${receiver.url}/v1/traces`,
          OTEL_BSP_SCHEDULE_DELAY: "100",
        },
      }),
    );
    await pollUntil("the agent is reachable", async () => (await fetch(`${gateway.url}/devices/otlp-dev/ping`)).status === 200, {
      timeoutMs: 20_000,
    });
  });
  after(() => teardown.run());

  it("exports the request's spans in the client's trace, under OTEL_SERVICE_NAME", async () => {
    const traceId = randomBytes(16).toString("hex");
    const clientSpan = randomBytes(8).toString("hex");
    const res = await fetch(`${gateway.url}/devices/otlp-dev/reading`, { headers: { traceparent: `00-${traceId}-${clientSpan}-01` } });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");

    const server = await pollUntil(
      "the gateway's SERVER span exported",
      () => receiver.json.find((e) => e.span.traceId === traceId && e.span.kind === SERVER),
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.equal(server.serviceName, "gateway-under-test");
    assert.equal(server.span.parentSpanId, clientSpan);
    assert.equal(server.span.name, "GET");
    const status = server.span.attributes?.find((a) => a.key === "http.response.status_code")?.value;
    assert.deepEqual(status, { intValue: 200 });

    const exchange = await pollUntil(
      "the exchange span exported",
      () => receiver.json.find((e) => e.span.traceId === traceId && e.span.kind === CLIENT),
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.equal(exchange.span.name, "xmpp exchange");
    assert.equal(exchange.span.parentSpanId, server.span.spanId);

    // The agent's spans, in protobuf: the trace id's 16 bytes are in what it posted.
    await pollUntil("the agent's spans exported (protobuf)", () => receiver.protobuf.some((b) => b.includes(Buffer.from(traceId, "hex"))), {
      timeoutMs: 15_000,
      intervalMs: 50,
    });
    const sent = seen.get("/reading");
    assert.ok(sent?.startsWith(`00-${traceId}-`), `the device's traceparent is in the trace: ${sent}`);
  });

  it("does not start when OTEL_ asks for what it cannot export with", async () => {
    const child = await spawnChild(process.execPath, [...TSX, "gateway/main.ts"], {
      name: "gateway-grpc",
      env: {
        XMPP_COMPONENT_SECRET: "x",
        GATEWAY_PORT: String(await freePort()),
        OTEL_TRACES_EXPORTER: "otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL: "grpc",
        LOG_LEVEL: "silent",
      },
    });
    teardown.stopLater("gateway-grpc", child);
    const exit = await child.exited;
    assert.equal(exit.code, 2, "a configuration error");
    assert.match(child.output(), /OTEL_EXPORTER_OTLP_PROTOCOL="grpc" must be one of http\/protobuf, http\/json/);
  });
});
