// `devices list`: one page of the listing, or with --all every page, following nextCursor to its end.
import type { DeviceEntry, DeviceFilter } from "../api-types.js";
import { count, printJson, printText, type CommandContext } from "../context.js";
import { Progress } from "../progress.js";
import { formatTable } from "../table.js";

export interface ListOptions {
  filter: DeviceFilter;
  limit?: number;
  cursor?: string;
  all: boolean;
}

export async function list(ctx: CommandContext, opts: ListOptions): Promise<number> {
  if (!opts.all) {
    const page = await ctx.client.listDevices({ ...opts.filter, limit: opts.limit, cursor: opts.cursor });
    if (ctx.json) {
      printJson(ctx, page);
      return 0;
    }
    printText(ctx, deviceTable(page.devices));
    if (page.nextCursor !== null) {
      printText(ctx, `more: --cursor ${page.nextCursor} (up to ${count(page.remaining)} entries after this page)`);
    }
    return 0;
  }
  // --all: the entries of every page, as one array (with --json, a valid GATEWAY_DEVICES_FILE).
  const devices: DeviceEntry[] = [];
  const progress = new Progress(ctx.stderr);
  let cursor: string | null = opts.cursor ?? null;
  try {
    do {
      const page = await ctx.client.listDevices({ ...opts.filter, limit: opts.limit, cursor });
      devices.push(...page.devices);
      cursor = page.nextCursor;
      if (cursor !== null) progress.update(`list: ${count(devices.length)} entries, ~${count(page.remaining)} left to examine`);
    } while (cursor !== null);
  } finally {
    progress.done();
  }
  if (ctx.json) printJson(ctx, devices);
  else printText(ctx, `${deviceTable(devices)}\n${count(devices.length)} ${devices.length === 1 ? "entry" : "entries"}`);
  return 0;
}

export function deviceTable(devices: readonly DeviceEntry[]): string {
  return formatTable(
    ["ID", "TRANSPORT", "FALLBACK", "HTTP TARGET", "LEGACY ADDRESS", "UPDATED"],
    devices.map((d) => [d.id, d.transport, d.fallback, d.httpTarget, d.legacyAddress, d.updatedAt]),
  );
}
