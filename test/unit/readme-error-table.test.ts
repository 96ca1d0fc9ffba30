// README's error table is what client authors read: it must be CATALOGUE (gateway/errors.ts) row for row,
// in the catalogue's order, once each: every code with the catalogue's status (or "per condition" for the
// codes whose status depends on the case) and a "when" that says something, and no code the gateway does not have.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CATALOGUE, type ErrorCode } from "../../gateway/errors.js";

/** Codes whose status is set per case (GatewayErrorOptions.status), not by the catalogue alone. */
const PER_CONDITION: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["GW_DEVICE_ERROR"]);

interface Row {
  code: string;
  status: string;
  when: string;
}

function readmeErrorRows(): Row[] {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("\n### Errors\n");
  assert.notEqual(start, -1, "README has an Errors section");
  const section = readme.slice(start + 1, readme.indexOf("\n#", start + 2));
  const rows: Row[] = [];
  for (const line of section.split("\n")) {
    // A row of the table: anything after the header and separator lines is one code per line.
    if (!line.startsWith("| `")) continue;
    const m = /^\| `([^`]+)` \| ([^|]+) \| (.*) \|$/.exec(line);
    assert.ok(m, `README's error table has a row it cannot read: ${line}`);
    rows.push({ code: m[1]!, status: m[2]!.trim(), when: m[3]!.trim() });
  }
  return rows;
}

describe("README error table", () => {
  const rows = readmeErrorRows();
  const byCode = new Map(rows.map((row) => [row.code, row]));

  it("has a row for every catalogue code, with its status", () => {
    for (const [code, { status }] of Object.entries(CATALOGUE) as Array<[ErrorCode, { status: number }]>) {
      const row = byCode.get(code);
      assert.ok(row !== undefined, `README's error table lacks ${code}`);
      assert.equal(row.status, PER_CONDITION.has(code) ? "per condition" : String(status), `README's status for ${code}`);
      assert.notEqual(row.when, "", `README's row for ${code} says when`);
    }
  });

  it("names no code the catalogue does not have", () => {
    for (const { code } of rows) assert.ok(code in CATALOGUE, `README names ${code}, which is not in the catalogue`);
  });

  it("has each code once, in the catalogue's order", () => {
    assert.deepEqual(
      rows.map((row) => row.code),
      Object.keys(CATALOGUE),
    );
  });
});
