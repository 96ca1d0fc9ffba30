// Progress lines of a bench run: on stderr, so that `--json` keeps stdout for the result alone.
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}
