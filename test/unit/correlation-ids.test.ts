import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { forLog, isAcceptableStreamId, isGatewayId, MAX_STREAM_ID_LENGTH, newId } from "../../gateway/correlation/ids.js";

describe("ids from XMPP", () => {
  it("recognizes the gateway's own ids, and nothing of another shape or length", () => {
    for (let i = 0; i < 1000; i++) assert.ok(isGatewayId(newId()));
    const own = newId();
    for (const foreign of [
      "",
      own.slice(1),
      `${own}x`,
      `${own.slice(1)}+`,
      `${own.slice(1)}/`,
      `${own.slice(1)}=`,
      "x".repeat(200 * 1024),
      `${own.slice(1)}\n`,
    ]) {
      assert.equal(isGatewayId(foreign), false, JSON.stringify(foreign.slice(0, 40)));
    }
  });

  it("takes stream ids of other schemes up to the length bound, without control characters", () => {
    assert.ok(isAcceptableStreamId(newId()));
    assert.ok(isAcceptableStreamId("3f2504e0-4f89-11d3-9a0c-0305e82c3301"));
    assert.ok(isAcceptableStreamId("s".repeat(MAX_STREAM_ID_LENGTH)));
    assert.equal(isAcceptableStreamId("s".repeat(MAX_STREAM_ID_LENGTH + 1)), false);
    assert.equal(isAcceptableStreamId(""), false);
    assert.equal(isAcceptableStreamId("a\nb"), false);
    assert.equal(isAcceptableStreamId("a\u007fb"), false);
  });

  it("cuts a long value for a log line, saying how long it was", () => {
    assert.equal(forLog("short"), "short");
    assert.equal(forLog(undefined), undefined);
    const cut = forLog("x".repeat(300 * 1024)) ?? "";
    assert.ok(cut.length < 100);
    assert.match(cut, /\(307200 characters\)$/);
  });
});
