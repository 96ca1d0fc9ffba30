// Regression: xmpp.js decodes every TCP read to text on its own, so a multi-byte UTF-8 character split
// between two reads became U+FFFD. The connection supervisor makes sockets decode across reads. Stanzas
// must be larger than one socket read (64 KiB) for the split to happen, hence the raised inline threshold.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { echoDevice, sha256 } from "../helpers/echo-device.js";
import { startFleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown } from "../helpers/stack.js";

const INLINE_LIMIT = 131072;
const teardown = new Teardown();
let gw: RunningGateway;

before(async () => {
  const stack = teardown.stopLater("stack", await startStack());
  gw = teardown.stopLater("gateway", await startGateway(stack, { GATEWAY_CHUNK_THRESHOLD_BYTES: String(INLINE_LIMIT) }));
  teardown.stopLater("fleet", await startFleet(stack.prosody, ["utf8-dev"], echoDevice, { chunkThresholdBytes: INLINE_LIMIT }));
});
after(() => teardown.run());

it("keeps multi-byte characters whole in inline <text> bodies larger than one socket read", async () => {
  const corrupted: number[] = [];
  // Ten offsets shift where the read boundaries fall relative to the 2-, 3- and 4-byte characters.
  for (let shift = 0; shift < 10; shift++) {
    const text = ("x".repeat(shift) + "température ☃ 😀 中文\n").repeat(3000); // 87 to 114 KB
    assert.ok(Buffer.byteLength(text) < INLINE_LIMIT && Buffer.byteLength(text) > 65536);
    const res = await fetch(`${gw.url}/devices/utf8-dev/echo`, { method: "POST", headers: { "content-type": "text/plain" }, body: text });
    const echoed = await res.text();
    if (res.headers.get("x-body-sha256") !== sha256(text) || echoed !== text) corrupted.push(shift);
  }
  assert.deepEqual(corrupted, [], "bodies corrupted on the way");
});
