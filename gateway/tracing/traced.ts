import type { TraceSpan } from "../../lib/tracing/tracing.js";
import { isGatewayError } from "../errors.js";

/**
 * Ends `span` when `work` settles: failed with the catalogue code (`error.type`) when it rejects, `_OTHER`
 * for anything that is not a catalogue error (the semantic conventions' fallback); `recordValue` first
 * notes what it resolved with (an answer's status). The result is `work`'s.
 */
export function traced<T>(span: TraceSpan, work: Promise<T>, recordValue?: (value: T) => void): Promise<T> {
  return work.then(
    (value) => {
      recordValue?.(value);
      span.end();
      return value;
    },
    (err: unknown) => {
      failSpan(span, err);
      span.end();
      throw err;
    },
  );
}

/** Marks `span` failed by `err`: its catalogue code, or `_OTHER`. */
export function failSpan(span: TraceSpan, err: unknown): void {
  span.fail(isGatewayError(err) ? err.code : "_OTHER");
}
