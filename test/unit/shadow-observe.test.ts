/**
 * Shadow mode hashes the HTTP answer as it streams past (gateway/delivery/shadow.ts). Whatever the device
 * does, that promise must never reject: when the client's request fails, nobody awaits it any more, and a
 * rejection would be unhandled (by Node's default, the end of the process).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { IncomingMessage } from "node:http";
import { Socket } from "node:net";
import { describe, it } from "node:test";
import { observeAnswer } from "../../gateway/delivery/shadow.js";

function response(): IncomingMessage {
  const msg = new IncomingMessage(new Socket());
  msg.statusCode = 200;
  msg.headers = { "content-type": "text/plain", etag: ['"a"', '"b"'] as unknown as string };
  return msg;
}

describe("observeAnswer", () => {
  it("resolves with status, body digest and compared headers once the body ended whole", async () => {
    const msg = response();
    const answer = observeAnswer(msg);
    msg.push(Buffer.from("hello "));
    msg.push(Buffer.from("world"));
    msg.complete = true;
    msg.push(null);
    assert.deepEqual(await answer, {
      status: 200,
      bodySha256: createHash("sha256").update("hello world").digest("hex"),
      headers: { "content-type": "text/plain", etag: '"a", "b"' },
    });
  });

  it("resolves with nothing, never rejects, when the body breaks off with an error", async () => {
    const msg = response();
    const answer = observeAnswer(msg);
    msg.push(Buffer.from("hel"));
    msg.destroy(new Error("aborted"));
    assert.equal(await answer, undefined);
  });

  it("resolves with nothing when the body is destroyed without an error before its end", async () => {
    const msg = response();
    const answer = observeAnswer(msg);
    msg.destroy();
    assert.equal(await answer, undefined);
  });
});
