/**
 * The error catalogue (README, "Errors") and the XEP-0086 mapping of a device's stanza errors to HTTP statuses.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CATALOGUE, GatewayError, errorBody, isGatewayError, toGatewayError, type ErrorCode } from "../../gateway/errors.js";
import { deviceWasReached, storeError } from "../../gateway/delivery/stored-outcome.js";
import { stanzaErrorToGatewayError } from "../../gateway/xmpp/stanza-errors.js";

/** README, "Errors", copied literally (GW_DEVICE_ERROR's status is per stanza error; its default is "others 502"). */
const DESIGN_TABLE: ReadonlyArray<readonly [ErrorCode, number]> = [
  ["GW_BAD_DEVICE_ID", 400],
  ["GW_UNKNOWN_DEVICE", 404],
  ["GW_NOT_A_DEVICE", 403],
  ["GW_PAYLOAD_TOO_LARGE", 413],
  ["GW_DEVICE_BUSY", 429],
  ["GW_DEVICE_OFFLINE", 503],
  ["GW_DEVICE_TIMEOUT", 504],
  ["GW_BAD_DEVICE_REPLY", 502],
  ["GW_DEVICE_ERROR", 502],
  ["GW_UPSTREAM_UNREACHABLE", 502],
  ["GW_UPSTREAM_TIMEOUT", 504],
  ["GW_BAD_UPSTREAM_REPLY", 502],
  ["GW_XMPP_UNAVAILABLE", 503],
  ["GW_STORE_UNAVAILABLE", 503],
  ["GW_SHUTTING_DOWN", 503],
  // §5 (Idempotency-Key)
  ["GW_IDEMPOTENCY_MISMATCH", 422],
  ["GW_IDEMPOTENCY_IN_FLIGHT", 409],
];

/** Codes the gateway adds beyond the §6 table. */
const EXTRA: ReadonlyArray<readonly [ErrorCode, number]> = [
  ["GW_METHOD_NOT_ALLOWED", 405],
  ["GW_NOT_FOUND", 404],
  ["GW_INVALID_FIELD", 400],
  ["GW_UNAUTHORIZED", 401],
  ["GW_CONFLICT", 409],
  ["GW_UNKNOWN_REQUEST", 404],
  ["GW_RATE_LIMITED", 429],
  ["GW_OVERLOADED", 503],
  ["GW_DEVICE_QUEUE_TIMEOUT", 504],
  ["GW_BAD_REQUEST", 400],
  ["GW_REQUEST_TIMEOUT", 408],
  ["GW_HEADERS_TOO_LARGE", 431],
  ["GW_EXPECTATION_FAILED", 417],
  ["GW_OUTCOME_UNKNOWN", 504],
  ["GW_INTERNAL", 500],
];

describe("error catalogue", () => {
  for (const [code, status] of DESIGN_TABLE) {
    it(`${code} is ${status}`, () => {
      assert.equal(CATALOGUE[code].status, status);
      const err = new GatewayError(code);
      assert.equal(err.code, code);
      assert.equal(err.status, status);
      assert.equal(err.message, CATALOGUE[code].message);
      assert.equal(err.retryAfterS, undefined);
    });
  }

  for (const [code, status] of EXTRA) {
    it(`${code} (beyond §6) is ${status}`, () => {
      assert.equal(new GatewayError(code).status, status);
    });
  }

  it("holds exactly the §6 codes plus the documented extras", () => {
    const expected = [...DESIGN_TABLE, ...EXTRA].map(([c]) => c).sort();
    assert.deepEqual(Object.keys(CATALOGUE).sort(), expected);
  });

  it("has a non-empty message and an error status (4xx/5xx) for every code", () => {
    for (const [code, { status, message }] of Object.entries(CATALOGUE)) {
      assert.ok(status >= 400 && status <= 599, code);
      assert.ok(message.length > 0, code);
    }
  });
});

describe("GatewayError", () => {
  it("is an Error named GatewayError", () => {
    const err = new GatewayError("GW_UNKNOWN_DEVICE");
    assert.ok(err instanceof Error);
    assert.equal(err.name, "GatewayError");
    assert.equal(isGatewayError(err), true);
  });

  it("takes a message, a status override, retryAfterS and a cause", () => {
    const cause = new Error("root");
    const err = new GatewayError("GW_DEVICE_ERROR", { message: "device said no", status: 403, retryAfterS: 7, cause });
    assert.equal(err.code, "GW_DEVICE_ERROR");
    assert.equal(err.message, "device said no");
    assert.equal(err.status, 403);
    assert.equal(err.retryAfterS, 7);
    assert.equal(err.cause, cause);
  });

  it("carries retryAfterS for busy and offline devices", () => {
    assert.equal(new GatewayError("GW_DEVICE_BUSY", { retryAfterS: 1 }).retryAfterS, 1);
    assert.equal(new GatewayError("GW_DEVICE_OFFLINE", { retryAfterS: 30 }).retryAfterS, 30);
    assert.equal(new GatewayError("GW_DEVICE_OFFLINE", { retryAfterS: 0 }).retryAfterS, 0);
  });

  it("has no cause property unless one is given", () => {
    assert.equal("cause" in new GatewayError("GW_INTERNAL"), false);
  });

  it("isGatewayError is false for look-alikes and plain errors", () => {
    assert.equal(isGatewayError(new Error("x")), false);
    assert.equal(isGatewayError({ name: "GatewayError", code: "GW_INTERNAL", status: 500 }), false);
    assert.equal(isGatewayError(undefined), false);
  });
});

describe("toGatewayError", () => {
  it("returns a GatewayError unchanged", () => {
    const err = new GatewayError("GW_DEVICE_TIMEOUT");
    assert.equal(toGatewayError(err), err);
  });

  it("wraps any other Error as GW_INTERNAL 500 with the original as cause, without leaking its message", () => {
    const original = new TypeError("secret detail at /srv/app.js");
    const err = toGatewayError(original);
    assert.equal(err.code, "GW_INTERNAL");
    assert.equal(err.status, 500);
    assert.equal(err.cause, original);
    assert.equal(err.message, CATALOGUE.GW_INTERNAL.message);
    assert.ok(!err.message.includes("secret"));
  });

  it("wraps thrown non-Errors too", () => {
    const err = toGatewayError("boom");
    assert.equal(err.code, "GW_INTERNAL");
    assert.equal(err.cause, "boom");
    assert.equal(toGatewayError({ code: 42 }).code, "GW_INTERNAL");
  });
});

describe("errorBody", () => {
  it("is {error:{code,message,deviceId,requestId}} in that order", () => {
    const body = errorBody(new GatewayError("GW_DEVICE_OFFLINE", { retryAfterS: 30 }), "req-1", "dev-17");
    assert.deepEqual(body, {
      error: { code: "GW_DEVICE_OFFLINE", message: CATALOGUE.GW_DEVICE_OFFLINE.message, deviceId: "dev-17", requestId: "req-1" },
    });
    assert.equal(
      JSON.stringify(body),
      JSON.stringify({ error: { code: "GW_DEVICE_OFFLINE", message: "device is not connected", deviceId: "dev-17", requestId: "req-1" } }),
    );
  });

  it("leaves deviceId out when there is none", () => {
    const body = errorBody(new GatewayError("GW_NOT_FOUND", { message: "no route GET /x" }), "req-2");
    assert.deepEqual(body, { error: { code: "GW_NOT_FOUND", message: "no route GET /x", requestId: "req-2" } });
    assert.equal("deviceId" in body.error, false);
  });

  it("carries no status, stack or cause", () => {
    const body = errorBody(toGatewayError(new Error("x")), "r");
    assert.deepEqual(Object.keys(body), ["error"]);
    assert.deepEqual(Object.keys(body.error), ["code", "message", "requestId"]);
  });
});

describe("stanzaErrorToGatewayError (XEP-0086)", () => {
  /** README, "Errors", GW_DEVICE_ERROR row. */
  const TABLE: ReadonlyArray<readonly [string, number]> = [
    ["item-not-found", 404],
    ["not-authorized", 401],
    ["forbidden", 403],
    ["not-allowed", 405],
    ["bad-request", 400],
    ["feature-not-implemented", 501],
    ["remote-server-timeout", 504],
    ["resource-constraint", 429],
    ["internal-server-error", 500],
  ];

  for (const [condition, status] of TABLE) {
    it(`${condition} → GW_DEVICE_ERROR ${status}`, () => {
      const err = stanzaErrorToGatewayError(condition, undefined, 30);
      assert.equal(err.code, "GW_DEVICE_ERROR");
      assert.equal(err.status, status);
      assert.ok(err.message.includes(condition), err.message);
    });
  }

  it("resource-constraint carries Retry-After; the other device errors do not", () => {
    assert.equal(stanzaErrorToGatewayError("resource-constraint", undefined, 12).retryAfterS, 12);
    for (const [condition] of TABLE.filter(([c]) => c !== "resource-constraint")) {
      assert.equal(stanzaErrorToGatewayError(condition, undefined, 12).retryAfterS, undefined, condition);
    }
  });

  for (const condition of ["undefined-condition", "gone", "redirect", "unexpected-request", "made-up-condition", ""]) {
    it(`unlisted condition ${JSON.stringify(condition)} → 502`, () => {
      const err = stanzaErrorToGatewayError(condition, undefined, 30);
      assert.equal(err.code, "GW_DEVICE_ERROR");
      assert.equal(err.status, 502);
      assert.equal(err.retryAfterS, undefined);
    });
  }

  // No session for the JID: Prosody (no text), ejabberd ("User session not found"), or any other text.
  for (const text of [undefined, "User session not found", "no session"]) {
    it(`service-unavailable (${String(text)}) → GW_DEVICE_OFFLINE 503 with Retry-After`, () => {
      const err = stanzaErrorToGatewayError("service-unavailable", text, 17);
      assert.equal(err.code, "GW_DEVICE_OFFLINE");
      assert.equal(err.status, 503);
      assert.equal(err.retryAfterS, 17);
    });
  }

  // XEP-0198: delivered to a session that vanished unacknowledged, bounced when it was not resumed in time.
  for (const [condition, text] of [
    ["recipient-unavailable", undefined], // Prosody mod_smacks
    ["recipient-unavailable", "no session"],
    ["service-unavailable", "User session terminated"], // ejabberd mod_stream_mgmt
  ] as const) {
    it(`${condition} (${String(text)}) → GW_OUTCOME_UNKNOWN 504: the device may have got it`, () => {
      const err = stanzaErrorToGatewayError(condition, text, 17);
      assert.equal(err.code, "GW_OUTCOME_UNKNOWN");
      assert.equal(err.status, 504);
      assert.equal(err.retryAfterS, undefined);
    });
  }

  it("includes the device's text in the message", () => {
    const err = stanzaErrorToGatewayError("item-not-found", "no such sensor", 30);
    assert.ok(err.message.includes("item-not-found"));
    assert.ok(err.message.includes("no such sensor"), err.message);
  });

  it("has no dangling separator when the text is absent or empty", () => {
    const without = stanzaErrorToGatewayError("forbidden", undefined, 30).message;
    const empty = stanzaErrorToGatewayError("forbidden", "", 30).message;
    assert.equal(without, empty);
    assert.ok(!without.endsWith(":") && !without.endsWith(": "), without);
  });

  it("does not take a status from the prototype chain for odd condition names", () => {
    for (const condition of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      const err = stanzaErrorToGatewayError(condition, undefined, 30);
      assert.equal(err.status, 502, `${condition} → ${String(err.status)}`);
    }
  });
});

describe("catalogue flags", () => {
  const flagged = (flag: "notReached" | "passThrough") =>
    (Object.entries(CATALOGUE) as Array<[ErrorCode, (typeof CATALOGUE)[ErrorCode]]>)
      .filter(([, e]) => e[flag])
      .map(([code]) => code)
      .sort();

  it("notReached: exactly the endings that prove the device was not reached (an Idempotency-Key is freed)", () => {
    assert.deepEqual(flagged("notReached"), [
      "GW_DEVICE_BUSY",
      "GW_DEVICE_OFFLINE",
      "GW_DEVICE_QUEUE_TIMEOUT",
      "GW_SHUTTING_DOWN",
      "GW_STORE_UNAVAILABLE",
      "GW_UNKNOWN_DEVICE",
      "GW_XMPP_UNAVAILABLE",
    ]);
  });

  it("notReached: deviceWasReached keeps every other ending, and every reply", () => {
    for (const code of Object.keys(CATALOGUE) as ErrorCode[]) {
      const outcome = storeError(new GatewayError(code));
      assert.equal(deviceWasReached(outcome), !CATALOGUE[code].notReached, code);
    }
    assert.equal(deviceWasReached({ kind: "reply", statusCode: 503, headers: [], body: "" }), true);
  });

  it("passThrough: exactly the codes the HTTP pass-through can end with", () => {
    assert.deepEqual(flagged("passThrough"), [
      "GW_BAD_UPSTREAM_REPLY",
      "GW_INTERNAL",
      "GW_METHOD_NOT_ALLOWED",
      "GW_PAYLOAD_TOO_LARGE",
      "GW_SHUTTING_DOWN",
      "GW_UPSTREAM_TIMEOUT",
      "GW_UPSTREAM_UNREACHABLE",
    ]);
  });
});
