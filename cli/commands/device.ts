// `devices get` and `devices set`: one registry entry, read or merged into (PATCH, README "Admin API").
import type { DeviceEntry } from "../api-types.js";
import { printJson, printText, type CommandContext } from "../context.js";
import { formatPairs } from "../table.js";

export async function get(ctx: CommandContext, id: string): Promise<number> {
  show(ctx, await ctx.client.getDevice(id));
  return 0;
}

export async function set(ctx: CommandContext, id: string, changes: Record<string, unknown>): Promise<number> {
  show(ctx, await ctx.client.patchDevice(id, changes));
  return 0;
}

function show(ctx: CommandContext, entry: DeviceEntry): void {
  if (ctx.json) return printJson(ctx, entry);
  printText(ctx, entryText(entry));
}

/** Every field of the entry, the known ones first in a fixed order, any newer ones after them. */
export function entryText(entry: DeviceEntry): string {
  const order = [
    "id",
    "transport",
    "fallback",
    "jid",
    "httpTarget",
    "legacyAddress",
    "acceptAnnouncedAddress",
    "codec",
    "timeoutMs",
    "maxInFlight",
    "online",
    "updatedAt",
  ];
  const fields = entry as unknown as Record<string, unknown>;
  const keys = [...order.filter((k) => k in fields), ...Object.keys(fields).filter((k) => !order.includes(k))];
  return formatPairs(keys.map((k) => [k, k === "online" && fields[k] === null ? "unknown" : fields[k]] as const));
}
