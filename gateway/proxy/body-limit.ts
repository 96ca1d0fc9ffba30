import { Transform, type TransformCallback } from "node:stream";

/**
 * Passes a request body through while counting it. Nothing past `maxBytes` goes on: at the first byte over
 * the limit `onOver` is called (once) and the rest is swallowed, so the device never gets a body that was
 * cut at the limit and then continued.
 */
export class BodyLimit extends Transform {
  private seen = 0;
  private over = false;

  constructor(
    private readonly maxBytes: number,
    private readonly onOver: () => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.maxBytes) {
      if (!this.over) {
        this.over = true;
        this.onOver();
      }
      callback();
      return;
    }
    callback(null, chunk);
  }
}
