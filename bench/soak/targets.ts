// The soak's target lines: per phase, the requests that did not come back from their device, and the
// gateway's peak RSS against the bound for its path. The bounds are for SOAK_TARGETS.requests held at once
// with Node's default heap: a run with fewer requests, or with the heap capped or grown through
// --gateway-node-options, says so on each line.
import { target, type Target } from "../common/targets.js";
import { SOAK_TARGETS, type SoakPhaseResult } from "./report.js";

const PATHS = { xmpp: "XMPP path", http: "pass-through" } as const;

export function soakTargets(phases: readonly SoakPhaseResult[], requests: number, gatewayNodeOptions: string | undefined): Target[] {
  const caveats: string[] = [];
  if (requests !== SOAK_TARGETS.requests) caveats.push(`${requests} requests held, the target is for ${SOAK_TARGETS.requests}`);
  if (gatewayNodeOptions) caveats.push(`NODE_OPTIONS=${gatewayNodeOptions}: the target is for Node's default heap`);
  const caveat = caveats.length > 0 ? { caveat: caveats.join("; ") } : {};
  return phases.flatMap((p) => [
    target({
      name: `soak ${PATHS[p.transport]}: requests not answered by their device`,
      measured: p.errors,
      comparison: "<=",
      bound: SOAK_TARGETS.errors,
      unit: "requests",
      ...caveat,
    }),
    target({
      name: `soak ${PATHS[p.transport]}: gateway peak RSS`,
      measured: p.gatewayRssMiB.peak,
      comparison: "<",
      bound: SOAK_TARGETS.gatewayPeakRssBelowMiB[p.transport],
      unit: "MiB",
      ...caveat,
    }),
  ]);
}
