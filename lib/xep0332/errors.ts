/**
 * Every decoding failure is a CodecError with a stable reason, so callers can map it (the gateway answers
 * 502 GW_BAD_DEVICE_REPLY, the agent a `bad-request` stanza error) and count it. Nothing else escapes the codec.
 */
export type CodecErrorReason =
  | "malformed" // not the shape XEP-0332 defines
  | "unsupported" // a valid form this implementation does not carry (sipub, ibb, jingle)
  | "too-large" // a body or stream over the receiver's bound
  | "bad-header"; // a header name or value that is not legal HTTP

export class CodecError extends Error {
  override readonly name = "CodecError";
  constructor(
    readonly reason: CodecErrorReason,
    message: string,
  ) {
    super(message);
  }
}

export function malformed(message: string): CodecError {
  return new CodecError("malformed", message);
}
