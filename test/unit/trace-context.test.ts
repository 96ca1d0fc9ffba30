// The W3C Trace Context codec (lib/tracing/trace-context.ts): which traceparent values a receiver may
// continue (https://www.w3.org/TR/trace-context/ §3.2), and the trace fields of a header list replaced for
// the next hop, under any spelling.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  boundedTracestate,
  formatTraceparent,
  MAX_TRACESTATE_LENGTH,
  parseTraceparent,
  setTraceFields,
  traceFieldsOf,
  withTraceFields,
} from "../../lib/tracing/trace-context.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT = "00f067aa0ba902b7";

describe("traceparent", () => {
  it("reads version 00 (the specification's own example)", () => {
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${PARENT}-01`), { traceId: TRACE, parentId: PARENT, flags: 1 });
    assert.deepEqual(parseTraceparent(` 00-${TRACE}-${PARENT}-00 `), { traceId: TRACE, parentId: PARENT, flags: 0 });
  });

  it("reads a later version by its first four fields, with or without more after them (§3.2.4)", () => {
    assert.deepEqual(parseTraceparent(`cc-${TRACE}-${PARENT}-01`), { traceId: TRACE, parentId: PARENT, flags: 1 });
    assert.deepEqual(parseTraceparent(`cc-${TRACE}-${PARENT}-01-what-comes-next`), { traceId: TRACE, parentId: PARENT, flags: 1 });
    assert.equal(parseTraceparent(`cc-${TRACE}-${PARENT}-01x`), undefined, "more must follow a dash");
  });

  for (const [why, value] of [
    ["absent", undefined],
    ["empty", ""],
    ["version ff", `ff-${TRACE}-${PARENT}-01`],
    ["version 00 with more after it", `00-${TRACE}-${PARENT}-01-00`],
    ["all-zero trace id", `00-${"0".repeat(32)}-${PARENT}-01`],
    ["all-zero parent id", `00-${TRACE}-${"0".repeat(16)}-01`],
    ["upper-case hex", `00-${TRACE.toUpperCase()}-${PARENT}-01`],
    ["short trace id", `00-${TRACE.slice(1)}-${PARENT}-01`],
    ["two fields joined (repeated header)", `00-${TRACE}-${PARENT}-01, 00-${TRACE}-${PARENT}-01`],
    ["not hex", `00-${"g".repeat(32)}-${PARENT}-01`],
  ] as const) {
    it(`refuses ${why}`, () => assert.equal(parseTraceparent(value), undefined));
  }

  it("writes version 00 with two-digit flags", () => {
    assert.equal(formatTraceparent(TRACE, PARENT, 1), `00-${TRACE}-${PARENT}-01`);
    assert.equal(formatTraceparent(TRACE, PARENT, 0), `00-${TRACE}-${PARENT}-00`);
    const written = formatTraceparent(TRACE, PARENT, 0xab);
    assert.deepEqual(parseTraceparent(written), { traceId: TRACE, parentId: PARENT, flags: 0xab });
  });
});

describe("tracestate", () => {
  it("is kept as received within its bound, and dropped beyond it or empty", () => {
    assert.equal(boundedTracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    assert.equal(boundedTracestate("  "), undefined);
    assert.equal(boundedTracestate(undefined), undefined);
    assert.equal(boundedTracestate(`a=${"x".repeat(MAX_TRACESTATE_LENGTH)}`), undefined);
  });
});

describe("trace fields of a header list", () => {
  it("finds them under any spelling, joining repeated tracestate fields", () => {
    const headers: Array<[string, string]> = [
      ["Accept", "*/*"],
      ["TraceParent", `00-${TRACE}-${PARENT}-01`],
      ["tracestate", "a=1"],
      ["TRACESTATE", "b=2"],
    ];
    assert.deepEqual(traceFieldsOf(headers), { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: "a=1,b=2" });
    assert.deepEqual(traceFieldsOf([["traceparent", `00-${TRACE}-${PARENT}-01`]]), { traceparent: `00-${TRACE}-${PARENT}-01` });
  });

  it("gives none for two traceparent fields (§3.2), or none at all", () => {
    const twice: Array<[string, string]> = [
      ["traceparent", `00-${TRACE}-${PARENT}-01`],
      ["Traceparent", `00-${TRACE}-${PARENT}-00`],
    ];
    assert.deepEqual(traceFieldsOf(twice), {});
    assert.deepEqual(traceFieldsOf([["accept", "*/*"]]), {});
  });

  it("replaces the caller's fields with ours, keeping the others in order, in a fresh list", () => {
    const headers: Array<[string, string]> = [
      ["Accept", "*/*"],
      ["TRACEPARENT", "00-client"],
      ["X-Other", "1"],
      ["TraceState", "client=1"],
    ];
    const ours = { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: "ours=1" };
    assert.deepEqual(withTraceFields(headers, ours), [
      ["Accept", "*/*"],
      ["X-Other", "1"],
      ["traceparent", ours.traceparent],
      ["tracestate", "ours=1"],
    ]);
    assert.equal(headers.length, 4, "the list given is not changed");
    assert.deepEqual(withTraceFields([["accept", "*/*"]], { traceparent: ours.traceparent }), [
      ["accept", "*/*"],
      ["traceparent", ours.traceparent],
    ]);
  });

  it("replaces them in a header object too, whatever their spelling", () => {
    const headers: Record<string, string | string[] | undefined> = { Traceparent: "00-client", TRACESTATE: "client=1", accept: "*/*" };
    setTraceFields(headers, { traceparent: `00-${TRACE}-${PARENT}-01` });
    assert.deepEqual(headers, { accept: "*/*", traceparent: `00-${TRACE}-${PARENT}-01` });
  });
});
