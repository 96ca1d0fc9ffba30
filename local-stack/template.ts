// The shipped configs under deploy/ are templates with placeholders (a name in capitals between at signs)
// that the local stack fills in for each run, so tests exercise the very files operators deploy.

/**
 * Fills the placeholders outside comment lines (whose comments may name them); an unknown one is an error
 * here, rather than a config error from a half-started server.
 */
export function fillPlaceholders(
  template: string,
  values: Readonly<Record<string, string>>,
  opts: { comment: RegExp; what: string },
): string {
  const unknown = new Set<string>();
  const filled = template
    .split("\n")
    .map((line) =>
      opts.comment.test(line)
        ? line
        : line.replace(/@([A-Z0-9_]+)@/g, (whole, name: string) => {
            const value = values[name];
            if (value === undefined) unknown.add(whole);
            return value ?? whole;
          }),
    )
    .join("\n");
  if (unknown.size > 0) throw new Error(`${opts.what}: unknown or misplaced placeholder(s) ${[...unknown].join(", ")}`);
  return filled;
}
