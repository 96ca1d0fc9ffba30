/**
 * The gateway's HTTP server lets a response carry the dozen `close` listeners the parts waiting for a device
 * request's end add (lib/http/response-end.ts, CLOSE_LISTENERS in gateway/http/server.ts) without node's
 * leak warning, which it gives from the eleventh on.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HttpServer } from "../../gateway/http/server.js";
import { whenClosed } from "../../lib/http/response-end.js";

describe("close listeners on a response", () => {
  it("a dozen parts each waiting for the end: every one called, and no leak warning", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    let called = 0;
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    const server = new HttpServer(
      (_req, res) => {
        for (let i = 0; i < 14; i++) whenClosed(res, () => (called += 1));
        whenClosed(res, done);
        res.end("ok");
      },
      { host: "127.0.0.1", port: 0 },
    );
    await server.start();
    try {
      assert.equal(await (await fetch(`http://127.0.0.1:${server.port}/`)).text(), "ok");
      await ended;
      // A warning is emitted on the next tick after the listener that crossed the limit: give it that tick.
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(called, 14);
      assert.deepEqual(
        warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message),
        [],
      );
    } finally {
      process.off("warning", onWarning);
      await server.stop();
    }
  });
});
