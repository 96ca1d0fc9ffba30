// gatewayctl's text output: aligned tables and label/value lines, escaped control characters, and the
// progress line (in place on a terminal, plain lines elsewhere).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Progress } from "../../cli/progress.js";
import { cellText, formatPairs, formatTable } from "../../cli/table.js";

describe("gatewayctl tables", () => {
  it("aligns each column to its widest cell, numbers to the right, with no trailing spaces", () => {
    const text = formatTable(
      ["ID", { title: "N", align: "right" }, "NOTE"],
      [
        ["dev-1", 5, "short"],
        ["device-long-1", 1234, undefined],
      ],
    );
    assert.equal(text, ["ID                N  NOTE", "dev-1             5  short", "device-long-1  1234  -"].join("\n"));
    for (const line of text.split("\n")) assert.equal(line, line.trimEnd());
  });

  it("prints the header alone for no rows", () => {
    assert.equal(formatTable(["ID", "TRANSPORT"], []), "ID  TRANSPORT");
  });

  it("counts characters, not UTF-16 units, for the width", () => {
    // U+1D465, outside the BMP: two UTF-16 units, one character.
    const text = formatTable(
      ["A", "B"],
      [
        ["\u{1d465}\u{1d465}\u{1d465}", "x"],
        ["ab", "y"],
      ],
    );
    assert.deepEqual(text.split("\n"), ["A    B", "\u{1d465}\u{1d465}\u{1d465}  x", "ab   y"]);
  });

  it("label/value pairs: aligned values, undefined left out, null and empty shown as '-'", () => {
    assert.equal(
      formatPairs([
        ["id", "dev-1"],
        ["transport", "xmpp"],
        ["jid", undefined],
        ["fallback", null],
        ["timeoutMs", 5000],
      ]),
      ["id         dev-1", "transport  xmpp", "fallback   -", "timeoutMs  5000"].join("\n"),
    );
  });

  it("escapes control characters, so no value moves the cursor or recolours the terminal", () => {
    assert.equal(cellText("a\u001b[31mred\r\n\u0085\u007f"), "a\\x1b[31mred\\x0d\\x0a\\x85\\x7f");
    assert.equal(cellText({ a: 1 }), '{"a":1}');
    assert.equal(cellText(false), "false");
    const table = formatTable(["X"], [["\u001b[2J"]]);
    assert.ok(!table.includes("\u001b"), table);
  });
});

describe("gatewayctl progress line", () => {
  const sink = (isTTY: boolean) => {
    const writes: string[] = [];
    return { writes, stream: { isTTY, write: (t: string) => writes.push(t) } };
  };

  it("on a terminal rewrites one line in place, and clears it when done", () => {
    const { writes, stream } = sink(true);
    const p = new Progress(stream);
    p.update("cutover: 1,000 changed, ~9,000 left");
    p.update("cutover: 2,000 changed, ~8,000 left");
    p.done();
    assert.deepEqual(writes, [
      "\r\u001b[2Kcutover: 1,000 changed, ~9,000 left",
      "\r\u001b[2Kcutover: 2,000 changed, ~8,000 left",
      "\r\u001b[2K",
    ]);
  });

  it("elsewhere writes plain lines, with no escape sequences", () => {
    const { writes, stream } = sink(false);
    const p = new Progress(stream);
    p.update("list: 100 entries");
    p.done();
    assert.deepEqual(writes, ["list: 100 entries\n"]);
  });

  it("done() without an update writes nothing", () => {
    const { writes, stream } = sink(true);
    new Progress(stream).done();
    assert.deepEqual(writes, []);
  });
});
