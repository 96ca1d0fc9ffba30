/**
 * WriteBatch (lib/xmpp/write-batch.ts): what is added in one pass of the event loop leaves in one write, in
 * order; each caller learns the fate of the write that carried its data; a failed write fails only its own
 * batch, and a write that throws rejects instead of throwing out of the event loop.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WriteBatch } from "../../lib/xmpp/write-batch.js";

describe("WriteBatch", () => {
  it("writes what was added in the same pass once, in order, and resolves each caller after that write", async () => {
    const writes: string[] = [];
    const batch = new WriteBatch((data) => {
      writes.push(data);
      return Promise.resolve();
    });
    const sent = [batch.add("<a/>"), batch.add("<b/>"), batch.add("<c/>")];
    assert.deepEqual(writes, [], "nothing is written while the pass runs");
    await Promise.all(sent);
    assert.deepEqual(writes, ["<a/><b/><c/>"]);
    await batch.add("<d/>");
    assert.deepEqual(writes, ["<a/><b/><c/>", "<d/>"], "a later pass gets a write of its own");
  });

  it("holds a caller until the socket took its write", async () => {
    let took: () => void = () => undefined;
    const batch = new WriteBatch(() => new Promise<void>((resolve) => (took = resolve)));
    let done = false;
    const sent = batch.add("<a/>").then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(done, false);
    took();
    await sent;
    assert.equal(done, true);
  });

  it("fails every caller of a failed write, and only those", async () => {
    const writes: string[] = [];
    let fail = true;
    const batch = new WriteBatch((data) => {
      writes.push(data);
      return fail ? Promise.reject(new Error("socket closed")) : Promise.resolve();
    });
    const first = [batch.add("<a/>"), batch.add("<b/>")];
    for (const p of first) await assert.rejects(p, /socket closed/);
    fail = false;
    await batch.add("<c/>");
    assert.deepEqual(writes, ["<a/><b/>", "<c/>"]);
  });

  it("turns a write that throws at once into a rejection", async () => {
    const batch = new WriteBatch(() => {
      throw new Error("Connection is closing");
    });
    await assert.rejects(batch.add("<a/>"), /Connection is closing/);
  });
});
