// README's error table is what client authors read: every catalogue code must be a row of it, with the
// catalogue's status (or "per condition" for the codes whose status depends on the case), and the table
// must name no code the gateway does not have.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CATALOGUE, type ErrorCode } from "../../gateway/errors.js";

/** Codes whose status is set per case (GatewayErrorOptions.status), not by the catalogue alone. */
const PER_CONDITION: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["GW_DEVICE_ERROR"]);

function readmeErrorRows(): Map<string, string> {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf("\n### Errors\n");
  assert.notEqual(start, -1, "README has an Errors section");
  const section = readme.slice(start + 1, readme.indexOf("\n#", start + 2));
  const rows = new Map<string, string>();
  for (const line of section.split("\n")) {
    const m = /^\| `(GW_[A-Z_]+)` \| ([^|]+) \|/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.trim());
  }
  return rows;
}

describe("README error table", () => {
  const rows = readmeErrorRows();

  it("has a row for every catalogue code, with its status", () => {
    for (const [code, { status }] of Object.entries(CATALOGUE) as Array<[ErrorCode, { status: number }]>) {
      const row = rows.get(code);
      assert.ok(row !== undefined, `README's error table lacks ${code}`);
      assert.equal(row, PER_CONDITION.has(code) ? "per condition" : String(status), `README's status for ${code}`);
    }
  });

  it("names no code the catalogue does not have", () => {
    for (const code of rows.keys()) assert.ok(code in CATALOGUE, `README names ${code}, which is not in the catalogue`);
  });
});
