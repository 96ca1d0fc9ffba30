// Reading a server's log from where a launch began: readiness and failure messages of the local stack
// come from the server's own log lines (restarts append to the same file).
import { open, stat } from "node:fs/promises";

export async function fileSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size;
  } catch {
    return 0;
  }
}

/** The file's text from byte `offset` to its current end. */
export async function readFrom(file: string, offset: number): Promise<string> {
  const handle = await open(file, "r");
  try {
    const { size } = await handle.stat();
    const buffer = Buffer.alloc(Math.max(0, size - offset));
    await handle.read(buffer, 0, buffer.length, offset);
    return buffer.toString("utf8");
  } finally {
    await handle.close();
  }
}
