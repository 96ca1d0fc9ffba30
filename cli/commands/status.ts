// `devices status`: GET /admin/migration (README, "Migrating a fleet") as a summary an operator reads at a
// glance: devices by transport, how many are online, shadow mismatches, and the migration waves.
import type { MigrationSummary } from "../api-types.js";
import { count, printJson, printText, type CommandContext } from "../context.js";
import { formatPairs, formatTable } from "../table.js";
import { counts } from "./wave.js";

/** Devices with the most mismatches first; the rest are counted, not listed. */
const MISMATCHES_SHOWN = 20;

export async function status(ctx: CommandContext): Promise<number> {
  const summary = await ctx.client.migration();
  if (ctx.json) printJson(ctx, summary);
  else printText(ctx, statusText(summary));
  return 0;
}

export function statusText(s: MigrationSummary): string {
  const registered = s.devices.registered;
  const share = (n: number): string => (registered === 0 ? "" : `${((100 * n) / registered).toFixed(1)}%`);
  const sections = [
    formatPairs([
      ["registered", count(registered)],
      ["online", count(s.online)],
    ]),
    formatTable(
      ["TRANSPORT", { title: "DEVICES", align: "right" }, { title: "SHARE", align: "right" }],
      Object.entries(s.devices.byTransport).map(([t, n]) => [t, count(n), share(n)]),
    ),
  ];
  const mismatches = Object.entries(s.shadowMismatches).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  if (mismatches.length === 0) sections.push("shadow mismatches: none");
  else {
    const shown = mismatches.slice(0, MISMATCHES_SHOWN);
    const more = mismatches.length - shown.length;
    sections.push(
      formatTable(
        ["SHADOW MISMATCHES", { title: "COUNT", align: "right" }],
        shown.map(([id, n]) => [id, count(n)]),
      ) + (more > 0 ? `\n(and ${count(more)} more devices)` : ""),
    );
  }
  if (s.waves) {
    const { watching, completed, rolledBack } = s.waves;
    let text = `waves: ${count(watching.length)} watching, ${count(completed)} completed, ${count(rolledBack)} rolled back`;
    if (watching.length > 0) {
      text +=
        "\n" +
        formatTable(
          ["WATCHING", { title: "DEVICES", align: "right" }, "UNTIL", "WAVE ERRORS", "BASELINE ERRORS"],
          watching.map((w) => [w.id, w.devices, w.watchUntil, counts(w.observed?.wave), counts(w.observed?.baseline)]),
        );
    }
    sections.push(text);
  }
  return sections.join("\n\n");
}
