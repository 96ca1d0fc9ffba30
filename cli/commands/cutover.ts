// `devices cutover`: moves devices to a transport through POST /admin/devices/bulk (docs/admin-api.md,
// "Bulk moves"): named ids in calls of at most 1000, or a filter page by page until nextCursor is null.
// Each device is changed on its own, so a failure stops nothing: the summary names every failed device.
import type { BulkAnswer, BulkResult, DeviceFilter } from "../api-types.js";
import { count, printJson, printText, type CommandContext } from "../context.js";
import { Progress } from "../progress.js";
import { formatTable } from "../table.js";

/** The API's bound on `ids` in one bulk call. */
export const IDS_PER_CALL = 1000;

export interface CutoverOptions {
  ids?: string[];
  filter?: DeviceFilter;
  to: string;
  dryRun: boolean;
  limit?: number;
}

export async function cutover(ctx: CommandContext, opts: CutoverOptions): Promise<number> {
  const total: BulkAnswer = {
    dryRun: opts.dryRun,
    matched: 0,
    changed: 0,
    unchanged: 0,
    failed: 0,
    results: [],
    nextCursor: null,
    remaining: 0,
  };
  const progress = new Progress(ctx.stderr);
  const set = { transport: opts.to };
  const add = (answer: BulkAnswer, left: number): void => {
    total.matched += answer.matched;
    total.changed += answer.changed;
    total.unchanged += answer.unchanged;
    total.failed += answer.failed;
    total.results.push(...answer.results);
    if (left > 0) progress.update(`cutover${opts.dryRun ? " (dry run)" : ""}: ${progressText(total)}, ~${count(left)} left`);
  };
  try {
    if (opts.ids) {
      for (let start = 0; start < opts.ids.length; start += IDS_PER_CALL) {
        const ids = opts.ids.slice(start, start + IDS_PER_CALL);
        add(await ctx.client.bulk({ ids, set, dryRun: opts.dryRun }), opts.ids.length - start - ids.length);
      }
    } else {
      let cursor: string | null = null;
      do {
        const answer = await ctx.client.bulk({ filter: opts.filter ?? {}, set, dryRun: opts.dryRun, limit: opts.limit, cursor });
        cursor = answer.nextCursor;
        add(answer, cursor === null ? 0 : answer.remaining);
      } while (cursor !== null);
    }
  } catch (err) {
    // What was already done stays done: say so before the error itself is printed.
    progress.done();
    if (total.matched > 0) ctx.stderr.write(`cutover stopped after ${progressText(total)}\n`);
    throw err;
  }
  progress.done();
  if (ctx.json) printJson(ctx, total);
  else printText(ctx, summary(total, opts.to));
  return total.failed > 0 ? 1 : 0;
}

function progressText(t: BulkAnswer): string {
  return `${count(t.changed)} ${t.dryRun ? "would change" : "changed"}, ${count(t.unchanged)} unchanged, ${count(t.failed)} failed`;
}

function summary(t: BulkAnswer, to: string): string {
  const lines = [`cutover to ${to}${t.dryRun ? " (dry run: nothing was written)" : ""}: ${count(t.matched)} matched, ${progressText(t)}`];
  const failed = t.results.filter(
    (r): r is BulkResult & { error: NonNullable<BulkResult["error"]> } => r.outcome === "failed" && !!r.error,
  );
  if (failed.length > 0) {
    lines.push(
      "",
      formatTable(
        ["FAILED", "CODE", "MESSAGE"],
        failed.map((r) => [r.id, r.error.code, r.error.message]),
      ),
    );
  }
  return lines.join("\n");
}
