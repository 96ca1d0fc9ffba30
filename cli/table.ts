// Aligned text tables for a terminal. Cells come from the gateway (ids, error messages, addresses): control
// characters are shown escaped, so no value can move the cursor or recolour the operator's terminal.

export interface Column {
  title: string;
  /** Numbers read best right-aligned. */
  align?: "left" | "right";
}

const GAP = "  ";

/** Rows under a header line, each column as wide as its widest cell; no trailing spaces. */
export function formatTable(columns: readonly (Column | string)[], rows: readonly (readonly unknown[])[]): string {
  const cols = columns.map((c) => (typeof c === "string" ? { title: c } : c));
  const cells = [cols.map((c) => c.title), ...rows.map((row) => cols.map((_, i) => cellText(row[i])))];
  const widths = cols.map((_, i) => Math.max(...cells.map((row) => width(row[i] ?? ""))));
  return cells
    .map((row) =>
      row
        .map((cell, i) => {
          const pad = " ".repeat((widths[i] ?? 0) - width(cell));
          return cols[i]?.align === "right" ? pad + cell : cell + pad;
        })
        .join(GAP)
        .trimEnd(),
    )
    .join("\n");
}

/** `label  value` lines with the values aligned; a pair whose value is undefined is left out. */
export function formatPairs(pairs: readonly (readonly [string, unknown])[]): string {
  const shown = pairs.filter(([, v]) => v !== undefined).map(([k, v]) => [cellText(k), cellText(v)] as const);
  const w = Math.max(0, ...shown.map(([k]) => width(k)));
  return shown.map(([k, v]) => `${k}${" ".repeat(w - width(k))}${GAP}${v}`.trimEnd()).join("\n");
}

/** A value as one line of text: `-` for nothing, control characters (C0, DEL, C1) escaped. */
export function cellText(value: unknown): string {
  if (value === undefined || value === null || value === "") return "-";
  const text =
    typeof value === "string" ? value : typeof value === "number" || typeof value === "boolean" ? String(value) : JSON.stringify(value);
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Characters in a string: code points, so a character outside the BMP (two UTF-16 units) counts once. */
function width(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}
