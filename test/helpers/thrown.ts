// Assertions on what a call throws, for errors whose fields the tests inspect.
import assert from "node:assert/strict";
import { ConfigError } from "../../lib/env.js";
import { CodecError, type CodecErrorReason } from "../../lib/xep0332/errors.js";

/** What `fn` threw, or undefined when it returned. */
export function thrownBy(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

export function expectConfigError(fn: () => unknown): ConfigError {
  const caught = thrownBy(fn);
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.name, "ConfigError");
  assert.equal(caught.message, caught.problems.join("\n"));
  return caught;
}

/** The codec's promise: bad input gives a CodecError with a reason, never another exception. */
export function expectCodecError(fn: () => unknown, reason: CodecErrorReason, label = ""): CodecError {
  const caught = thrownBy(fn);
  if (!(caught instanceof CodecError)) {
    const got = caught instanceof Error ? `${caught.constructor.name}: ${caught.message}` : `no exception (${String(caught)})`;
    assert.fail(`${label}: expected CodecError(${reason}), got ${got}`);
  }
  assert.equal(caught.reason, reason, `${label}: ${caught.message}`);
  assert.equal(caught.name, "CodecError");
  return caught;
}
