/**
 * Stanzas sent in the same pass of the event loop leave in one socket write. Under load each HTTP request
 * reaches the gateway in an I/O callback of its own, and each sent its IQ at once: one `write(2)` per IQ,
 * and on loopback each write also runs the receiving side of TCP and wakes the XMPP server. Flushed from
 * `setImmediate`, as ioredis flushes its auto-pipeline: after every I/O callback of the current pass, so
 * a stanza waits only for the requests that arrived with it. One request alone waits for nothing.
 */
export class WriteBatch {
  private parts: string[] = [];
  private written: Promise<void> | undefined;

  /** `write`: the connection's own write of serialized XML, resolving once the socket took it. */
  constructor(private readonly write: (data: string) => Promise<unknown>) {}

  /**
   * Queues `data` for this pass's write; resolves once the write that carries it succeeded, rejects if it
   * failed (every stanza of that write failed with it).
   */
  add(data: string): Promise<void> {
    this.parts.push(data);
    this.written ??= new Promise<void>((resolve, reject) => setImmediate(() => this.flush(resolve, reject)));
    return this.written;
  }

  private flush(resolve: () => void, reject: (err: unknown) => void): void {
    const data = this.parts.length === 1 ? (this.parts[0] as string) : this.parts.join("");
    this.parts = [];
    this.written = undefined;
    try {
      this.write(data).then(() => resolve(), reject);
    } catch (err) {
      reject(err);
    }
  }
}
