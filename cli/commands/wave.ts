// `devices wave start|list|get|rollback` over /admin/waves (docs/admin-api.md, "Migration waves").
// `get --watch` polls the wave until it is no longer watching, printing its counts whenever they change.
import type { Wave, WaveCounts, WaveRequest } from "../api-types.js";
import { count, printJson, printText, type CommandContext } from "../context.js";
import { formatPairs, formatTable } from "../table.js";

export async function startWave(ctx: CommandContext, request: WaveRequest): Promise<number> {
  const wave = await ctx.client.startWave(request);
  if (ctx.json) printJson(ctx, wave);
  else if (wave.dryRun === true) printText(ctx, planText(wave));
  else printText(ctx, waveText(wave));
  return 0;
}

/** A dry run's answer: no wave was made, only the devices it would move. */
function planText(plan: Wave): string {
  return formatPairs([
    ["dry run", `nothing was changed: ${count(plan.devices ?? plan.deviceIds?.length ?? 0)} devices would move to ${plan.to ?? "?"}`],
    ["window", plan.windowMs === undefined ? undefined : duration(plan.windowMs)],
    ["rolls back", threshold(plan)],
    ["device ids", plan.deviceIds && idsText(plan.deviceIds)],
  ]);
}

/** A wave may hold 10,000 devices: a table shows the first few, `--json` every one. */
const IDS_SHOWN = 20;

function idsText(ids: readonly string[]): string {
  const more = ids.length - IDS_SHOWN;
  return ids.slice(0, IDS_SHOWN).join(" ") + (more > 0 ? ` (and ${count(more)} more: --json lists them all)` : "");
}

function threshold(w: Wave): string | undefined {
  if (w.maxErrorRateIncrease === undefined) return undefined;
  return `when its error rate exceeds the baseline's by more than ${w.maxErrorRateIncrease}, after ${w.minRequests ?? "?"} requests`;
}

export async function listWaves(ctx: CommandContext): Promise<number> {
  const { waves } = await ctx.client.listWaves();
  if (ctx.json) {
    printJson(ctx, { waves });
    return 0;
  }
  printText(
    ctx,
    formatTable(
      ["ID", "STATE", { title: "DEVICES", align: "right" }, "CREATED", "WAVE ERRORS", "BASELINE ERRORS"],
      waves.map((w) => [w.id, w.state, w.devices, w.createdAt, counts(w.observed?.wave), counts(w.observed?.baseline)]),
    ),
  );
  return 0;
}

export async function getWave(ctx: CommandContext, id: string, watch: boolean, intervalMs: number): Promise<number> {
  let wave = await ctx.client.getWave(id);
  if (!watch || wave.state !== "watching") {
    if (ctx.json) printJson(ctx, wave);
    else printText(ctx, waveText(wave));
    return 0;
  }
  // Watching: the wave's settings once, then a line each time its state or counts change; with --json, the
  // wave as one JSON line each time (a stream a program can read line by line).
  if (!ctx.json) printText(ctx, waveText(wave));
  let last = "";
  for (;;) {
    const seen = JSON.stringify([wave.state, wave.observed, wave.rollback]);
    if (seen !== last) {
      last = seen;
      if (ctx.json) ctx.stdout.write(`${JSON.stringify(wave)}\n`);
      else printText(ctx, watchLine(wave));
    }
    if (wave.state !== "watching") break;
    await ctx.sleep(intervalMs);
    wave = await ctx.client.getWave(id);
  }
  if (!ctx.json && wave.rollback) printText(ctx, rollbackText(wave));
  return 0;
}

export async function rollbackWave(ctx: CommandContext, id: string): Promise<number> {
  const wave = await ctx.client.rollbackWave(id);
  if (ctx.json) printJson(ctx, wave);
  else printText(ctx, waveText(wave));
  return 0;
}

export function waveText(w: Wave): string {
  const pairs: (readonly [string, unknown])[] = [
    ["wave", w.id],
    ["state", w.state],
    ["to", w.to],
    ["devices", w.devices],
    ["created", w.createdAt],
    ["watch until", w.watchUntil],
    ["window", w.windowMs === undefined ? undefined : duration(w.windowMs)],
    ["rolls back", threshold(w)],
    ["wave errors", w.observed ? counts(w.observed.wave) : undefined],
    ["baseline errors", w.observed ? counts(w.observed.baseline) : undefined],
    ["ended", w.endedAt ?? undefined],
  ];
  if (w.rollback) pairs.push(["rollback", rollbackText(w)]);
  if (w.deviceIds) pairs.push(["device ids", idsText(w.deviceIds)]);
  // Fields this client does not know yet (a dry run's answer, a newer gateway) are shown rather than lost.
  const known = new Set([
    ...["id", "state", "to", "devices", "createdAt", "watchUntil", "windowMs", "maxErrorRateIncrease", "minRequests"],
    ...["observed", "endedAt", "rollback", "deviceIds"],
  ]);
  for (const [k, v] of Object.entries(w)) if (!known.has(k)) pairs.push([k, Array.isArray(v) ? v.join(" ") : v]);
  return formatPairs(pairs);
}

function watchLine(w: Wave): string {
  const time = new Date().toISOString().slice(11, 19);
  return `${time}  ${w.state}  wave ${counts(w.observed?.wave)}  baseline ${counts(w.observed?.baseline)}`;
}

function rollbackText(w: Wave): string {
  const r = w.rollback;
  if (!r) return "";
  const parts = [`${r.reason} at ${r.at}`];
  if (r.detail) parts.push(r.detail);
  if (r.restored !== undefined) parts.push(`${count(r.restored)} restored`);
  if (r.skipped && r.skipped.length > 0) parts.push(`skipped (changed since): ${r.skipped.join(" ")}`);
  return parts.join("; ");
}

/** `2/130 (1.54%)`: errors over requests. */
export function counts(c: WaveCounts | undefined): string {
  if (!c) return "-";
  return `${count(c.errors)}/${count(c.requests)} (${(c.errorRate * 100).toFixed(2)}%)`;
}

/** Milliseconds in the largest unit that shows them whole, as --window takes them: `10m`, `90s`, `1500ms`. */
export function duration(ms: number): string {
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
