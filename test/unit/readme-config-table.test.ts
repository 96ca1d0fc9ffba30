// README's configuration table is what operators read: it must name exactly the variables of the settings
// table (gateway/settings.ts; the agent's, adapters/device-agent/settings.ts), each with the default the code applies (shownDefault: the value in
// backquotes, "(required)", or "(unset…"). A row may name several variables ("`A` / `B`"), with one default
// each ("`1` / `2`") or one for all.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { shownDefault, type Setting } from "../../lib/env.js";
import { AGENT_SETTINGS } from "../../adapters/device-agent/settings.js";
import { GATEWAY_SETTINGS } from "../../gateway/settings.js";

/** Variable → the README's default cell for it, from the first table under `heading`. */
function readmeConfigRows(heading: string): Map<string, string> {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const start = readme.indexOf(`\n${heading}\n`);
  assert.notEqual(start, -1, `README has a section "${heading}"`);
  const section = readme.slice(start + 1, readme.indexOf("\n## ", start + 2));
  const lines = section.split("\n");
  const header = lines.findIndex((line) => line.startsWith("| variable | default |"));
  assert.notEqual(header, -1, `"${heading}" has a table of variables`);
  const rows = new Map<string, string>();
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith("|")) break;
    const cells = line.split(" | ");
    const names = [...(cells[0] ?? "").matchAll(/`([A-Z0-9_]+)`/g)].map((m) => m[1]!);
    const cell = (cells[1] ?? "").trim();
    // "`8080` / `0.0.0.0`": one default per name; anything else is the default of every name of the row.
    const defaults = names.length > 1 && cell.split(" / ").length === names.length ? cell.split(" / ") : names.map(() => cell);
    names.forEach((name, i) => {
      assert.ok(!rows.has(name), `README's "${heading}" table has ${name} twice`);
      rows.set(name, defaults[i]!);
    });
  }
  return rows;
}

function checkTable(heading: string, settings: Readonly<Record<string, Setting>>): void {
  const rows = readmeConfigRows(heading);

  it("has a row for every setting, with the default the code applies", () => {
    for (const [name, setting] of Object.entries(settings)) {
      const cell = rows.get(name);
      assert.ok(cell !== undefined, `README's table lacks ${name}`);
      const shown = shownDefault(setting);
      // "(unset: what that means)" may be worded for the reader; "(unset" and the backquoted value may not.
      const expected = shown.startsWith("(unset") ? "(unset" : shown;
      assert.ok(cell.startsWith(expected), `README's default for ${name} is ${JSON.stringify(cell)}, the code's is ${shown}`);
    }
  });

  it("names no variable the program does not read", () => {
    for (const name of rows.keys()) assert.ok(name in settings, `README's table names ${name}, which is not a setting`);
  });
}

describe("README configuration table (gateway)", () => checkTable("## Configuration (gateway)", GATEWAY_SETTINGS));
describe("README configuration table (device agent)", () =>
  checkTable("## Running the device agent next to a legacy device", AGENT_SETTINGS));
