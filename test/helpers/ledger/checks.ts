// The checks of a "nothing lost" run, as assertions, shared by every test that runs one: each lists the
// offending requests (the first 20) in its message.
import assert from "node:assert/strict";
import type { LedgerRun } from "./run.js";

/** Every request got its own reply or a catalogue error; connections were lost only with a killed instance. */
export function assertEveryRequestAnswered(run: LedgerRun, gatewayKills: ReadonlyArray<{ at: number; until: number }>): void {
  const wrong = run.wrongAnswers();
  assert.deepEqual(wrong.slice(0, 20), [], `${wrong.length} requests got an answer that is neither their own reply nor a catalogue error`);
  const unanswered = run.unanswered();
  assert.deepEqual(unanswered.slice(0, 20), [], `${unanswered.length} requests got no answer at all after the client's retries: lost`);
  // Connections are lost only with the instance that held them: every reset, or HAProxy 502/504, was in flight
  // between a gateway instance's kill and HAProxy's DOWN for it (Redis and XMPP outages are answered, not
  // dropped). Not only at the kill: until HAProxy has seen the instance die it may still send a request over an
  // idle connection to it, and how long that takes depends on how busy the machine is.
  const downs = gatewayKills.map((k) => `${k.at}-${k.until}`).join(", ");
  assert.deepEqual(
    run.resetsOutside(gatewayKills).slice(0, 20),
    [],
    `connections lost with no instance down (killed, then DOWN in HAProxy or back: ${downs || "none"} ms)`,
  );
}

/** Every accepted asynchronous request settles, the same on both instances: never 404, never pending forever. */
export async function assertAsyncSettled(run: LedgerRun): Promise<void> {
  await run.settleAsync();
  const v = run.asyncViolations();
  assert.deepEqual(v.lost.slice(0, 20), [], `${v.lost.length} accepted asynchronous requests were lost`);
  assert.deepEqual(v.wrong.slice(0, 20), [], "an asynchronous result that is not its own reply or a catalogue error");
  assert.deepEqual(v.differ.slice(0, 20), [], "both instances report the same result");
}

/**
 * No key acted twice, under the faults nor when every key is sent once more after them; a replay gets the kept
 * outcome; every key answers again with the outcome it first gave.
 */
export async function assertKeysActOnce(run: LedgerRun): Promise<void> {
  assert.deepEqual(run.duplicates(), [], "keyed actuations, or unkeyed POST/PATCH requests, that reached their device twice");
  assert.deepEqual(run.replaysDiffering().slice(0, 20), [], "a replay with the same key returns the kept outcome");
  await run.resendKeys();
  const again = run.asyncViolations();
  assert.deepEqual([...again.lost, ...again.wrong].slice(0, 20), [], "keys sent again and accepted asynchronously settle");
  assert.deepEqual(run.duplicates(), [], "sending a key again after the faults must not reach the device again");
  const k = run.keyViolations();
  assert.deepEqual(k.wrong.slice(0, 20), [], "answers to keys sent again that are neither their own reply nor a catalogue error");
  assert.deepEqual(k.differ.slice(0, 20), [], "a key answers again with the outcome it first gave");
}

/** A key whose request never recorded its outcome answers "outcome unknown" after its deadline, not 409 forever. */
export function assertNoKeyStuck(run: LedgerRun): void {
  const stuck = run.keyViolations().stuck;
  assert.deepEqual(
    stuck.slice(0, 20),
    [],
    `${stuck.length} Idempotency-Keys still answer 409 GW_IDEMPOTENCY_IN_FLIGHT long after their request's deadline`,
  );
}
