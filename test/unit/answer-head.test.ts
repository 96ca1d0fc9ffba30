// writeAnswerHead (gateway/messages/device-messages.ts): the head of a device's answer, written from one list
// of fields, and what a refused field leaves behind: nothing, for the error written next.
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { describe, it, type TestContext } from "node:test";
import { writeAnswerHead } from "../../gateway/messages/device-messages.js";

/** A loopback server answering each request with `handler`, and the raw bytes of one response to a GET. */
async function rawAnswer(t: TestContext, handler: (res: http.ServerResponse) => void): Promise<string> {
  const server = http.createServer((_req, res) => handler(res));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.after(() => server.close());
  const { port } = server.address() as net.AddressInfo;
  const socket = net.connect(port, "127.0.0.1");
  socket.end("GET / HTTP/1.1\r\nHost: dev\r\nConnection: close\r\n\r\n");
  const parts: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => parts.push(chunk));
  await once(socket, "close");
  return Buffer.concat(parts).toString("latin1");
}

describe("writeAnswerHead", () => {
  it("writes the device's fields in order, repeats kept, and X-Request-Id last", async (t) => {
    const raw = await rawAnswer(t, (res) => {
      writeAnswerHead(
        res,
        {
          statusCode: 299,
          statusMessage: "Custom",
          headers: [
            ["Set-Cookie", "a=1"],
            ["X-Multi", "one"],
            ["Set-Cookie", "b=2"],
            ["Content-Type", "text/plain"],
          ],
        },
        "rid-1",
      );
      res.end("hello");
    });
    const [head, body] = raw.split("\r\n\r\n");
    const lines = (head ?? "").split("\r\n");
    assert.equal(lines[0], "HTTP/1.1 299 Custom");
    assert.deepEqual(lines.slice(1, 6), [
      "Set-Cookie: a=1",
      "X-Multi: one",
      "Set-Cookie: b=2",
      "Content-Type: text/plain",
      "X-Request-Id: rid-1",
    ]);
    assert.match(body ?? "", /hello/);
  });

  it("throws on a field node refuses, leaving no field and no framing of the device's to the error written next", async (t) => {
    let thrown: unknown;
    const raw = await rawAnswer(t, (res) => {
      try {
        writeAnswerHead(
          res,
          {
            statusCode: 200,
            statusMessage: undefined,
            headers: [
              ["Transfer-Encoding", "chunked"],
              ["X-Device", "kept?"],
              ["X-Evil", "a\r\nSet-Cookie: stolen=1"],
            ],
          },
          "rid-2",
        );
      } catch (err) {
        thrown = err;
      }
      const body = '{"error":"bad reply"}';
      res.writeHead(502, { "Content-Type": "application/json", "Content-Length": String(body.length) });
      res.end(body);
    });
    assert.equal((thrown as NodeJS.ErrnoException | undefined)?.code, "ERR_INVALID_CHAR");
    const [head, body] = raw.split("\r\n\r\n");
    assert.match(head ?? "", /^HTTP\/1\.1 502 /);
    assert.doesNotMatch(head ?? "", /Transfer-Encoding|X-Device|X-Evil|stolen/i);
    assert.equal(body, '{"error":"bad reply"}', "the error's body as it is, not chunk-framed");
  });
});
