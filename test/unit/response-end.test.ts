/**
 * whenClosed (lib/http/response-end.ts): each callback a plain `close` listener of the response (no `once`
 * wrapper, no list kept on the response); each called once, in order, whether the response finished or its
 * client left.
 */
import assert from "node:assert/strict";
import { once } from "node:events";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { whenClosed } from "../../lib/http/response-end.js";

/** A server on port 0 whose handler is `handle`; stopped by the returned function. */
async function serve(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; stop(): Promise<void> }> {
  const server = http.createServer(handle);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    stop: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe("whenClosed", () => {
  it("calls every callback once, in order, each a plain close listener, when the response finished", async () => {
    const calls: string[] = [];
    let listeners: unknown[] = [];
    const callbacks: Array<() => void> = [];
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    const server = await serve((_req, res) => {
      const before = res.rawListeners("close");
      for (const name of ["a", "b", "c"]) {
        const callback = () => calls.push(`${name}:${res.writableFinished}`);
        callbacks.push(callback);
        whenClosed(res, callback);
      }
      whenClosed(res, done);
      listeners = res.rawListeners("close").filter((l) => !before.includes(l));
      res.end("ok");
    });
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/`);
      assert.equal(await res.text(), "ok");
      await ended;
      assert.deepEqual(calls, ["a:true", "b:true", "c:true"]);
      assert.deepEqual(listeners, [...callbacks, done], "the callbacks themselves, no wrappers, nothing else added");
      assert.equal(Object.hasOwn(res, "endings"), false);
    } finally {
      await server.stop();
    }
  });

  it("runs a callback added by another while the response closes", async () => {
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    const server = await serve((_req, res) => {
      whenClosed(res, () => whenClosed(res, done));
      res.end("ok");
    });
    try {
      await (await fetch(`http://127.0.0.1:${server.port}/`)).text();
      await ended;
    } finally {
      await server.stop();
    }
  });

  it("calls them when the client leaves before the response is over", async () => {
    const finished: boolean[] = [];
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    let gotRequest!: () => void;
    const requested = new Promise<void>((resolve) => (gotRequest = resolve));
    const server = await serve((_req, res) => {
      whenClosed(res, () => finished.push(res.writableFinished));
      whenClosed(res, done);
      gotRequest(); // never answered
    });
    try {
      const client = http.get({ port: server.port, host: "127.0.0.1", path: "/" });
      client.on("error", () => undefined);
      await requested;
      client.destroy();
      await ended;
      assert.deepEqual(finished, [false]);
    } finally {
      await server.stop();
    }
  });

  it("runs a callback given after the close in a microtask, not in the caller's code", async () => {
    let closedRes: ServerResponse | undefined;
    let done!: () => void;
    const ended = new Promise<void>((resolve) => (done = resolve));
    const server = await serve((_req, res) => {
      res.once("close", () => {
        closedRes = res;
        done();
      });
      res.end("ok");
    });
    try {
      await (await fetch(`http://127.0.0.1:${server.port}/`)).text();
      await ended;
      const res = closedRes as ServerResponse;
      assert.equal(res.closed, true, "the premise: the response is closed");
      let ran = false;
      whenClosed(res, () => (ran = true));
      assert.equal(ran, false);
      await Promise.resolve();
      assert.equal(ran, true);
    } finally {
      await server.stop();
    }
  });
});
