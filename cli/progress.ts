// The progress line of a long bulk operation, on stderr so that stdout (a table, or JSON for a pipe) stays
// clean. On a terminal one line is rewritten in place; otherwise (a log file, CI) each update is a line.

export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
}

export class Progress {
  private shown = false;

  constructor(private readonly stream: ProgressStream) {}

  update(text: string): void {
    if (this.stream.isTTY === true) {
      // CR, then "erase in line" (ECMA-48 EL, CSI 2 K): a shorter line leaves nothing of the longer one.
      this.stream.write(`\r\u001b[2K${text}`);
      this.shown = true;
    } else {
      this.stream.write(`${text}\n`);
    }
  }

  /** Clears the in-place line, so that what is printed next starts on a clean line. */
  done(): void {
    if (this.shown) this.stream.write("\r\u001b[2K");
    this.shown = false;
  }
}
