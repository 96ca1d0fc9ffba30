// One phase of the soak run (bench/soak/soak.ts): the burst of requests through one of the gateway's paths, and
// what is read meanwhile: every process's CPU (/proc, at the burst's edges), the gateway's and the agent's
// RSS (/proc, VmHWM reset at the start: the exact peak of the phase), the gateway's own figures (/metrics:
// its in-flight gauge, its heap, the counters that explain failures), the devices' count of requests held,
// and the kernel's count of connections dropped at full accept queues.
import { pollUntil } from "../../local-stack/ports.js";
import type { GatewayProcess } from "../../test/helpers/gateway-process.js";
import type { Teardown } from "../../test/helpers/stack.js";
import type { AgentProcess } from "../common/agent-process.js";
import type { SoakArgs, SoakPhase } from "../common/args.js";
import type { BurstConfig, BurstResult } from "./burst-worker.js";
import { cpuSecondsBetween, sampleTicks, type CpuSeconds, type Pids } from "../common/cpu.js";
import { PeakSampler } from "./peaks.js";
import { listenOverflows, memoryOf, MIB, resetPeakRss } from "../common/proc.js";
import { progress } from "../common/progress.js";
import { scrapeMetrics } from "../common/scrape.js";
import type { DeviceStats } from "../common/slow-devices-worker.js";
import { SOAK_TARGETS, type SoakPhaseResult } from "./report.js";
import { WorkerProcess } from "../common/worker-process.js";

/** Counters whose growth during a phase explains its failures from the gateway's side. */
const COUNTERS = [
  "gateway_xmpp_iq_timeouts_total",
  "gateway_replies_dropped_total",
  "gateway_proxy_errors_total",
  "gateway_admission_refusals_total",
] as const;
const LABELS: Record<SoakPhase, string> = { xmpp: "gateway XMPP path", http: "gateway HTTP pass-through" };
/** Sampled from the gateway's /metrics during a phase: its in-flight gauge and where its memory is. */
const SAMPLED = {
  inflight: "gateway_xmpp_iq_inflight",
  heapUsed: "nodejs_heap_size_used_bytes",
  heapTotal: "nodejs_heap_size_total_bytes",
  external: "nodejs_external_memory_bytes",
} as const;

/** What the phases share: the processes of the run, and its settings. */
export interface SoakRun {
  gw: GatewayProcess;
  /** Absent when the run has no XMPP phase. */
  agent: AgentProcess | undefined;
  devices: WorkerProcess;
  pids: Pids;
  ids: string[];
  deadlineMs: number;
  hz: number;
  teardown: Teardown;
}

const mib = (bytes: number | undefined): number => (bytes === undefined ? Number.NaN : bytes / MIB);

async function deviceStats(devices: WorkerProcess): Promise<DeviceStats> {
  devices.send("stats");
  return (await devices.next("stats", 10_000)) as unknown as DeviceStats;
}

/** After a phase: nothing held at the devices, no connection left open there (their files), no exchange pending. */
async function settle(r: SoakRun): Promise<void> {
  await pollUntil(
    "the previous phase to settle",
    async () => {
      const stats = await deviceStats(r.devices);
      const gauge = (await scrapeMetrics(r.gw.url, ["gateway_xmpp_iq_inflight"])).gateway_xmpp_iq_inflight ?? 0;
      return stats.held === 0 && stats.connections === 0 && gauge === 0;
    },
    { timeoutMs: 30_000, intervalMs: 250 },
  ).catch((err: unknown) => progress(`going on anyway: ${(err as Error).message}`));
}

export async function runPhase(r: SoakRun, transport: SoakPhase, o: SoakArgs): Promise<SoakPhaseResult> {
  const label = LABELS[transport];
  const gatewayPid = r.pids.gateway as number;
  const agentPid = r.pids.agent;
  await settle(r);
  r.devices.send("reset");
  await r.devices.next("reset", 10_000);
  const countersBefore = await scrapeMetrics(r.gw.url, COUNTERS);
  const rssBefore = mib(memoryOf(gatewayPid)?.rssBytes);
  // VmHWM is the exact peak, once reset for this phase; the sampled peak covers a kernel that refuses.
  const exactPeaks = resetPeakRss(gatewayPid) && (agentPid === undefined || resetPeakRss(agentPid));
  const rss = new PeakSampler(
    () => ({ gateway: memoryOf(gatewayPid)?.rssBytes, agent: agentPid === undefined ? undefined : memoryOf(agentPid)?.rssBytes }),
    100,
  );
  // The gauge is set as each exchange starts and ends; a scrape reads it at that instant. Sampled, so the
  // peak is a lower bound, but the plateau lasts the whole hold time. The heap figures say where RSS went.
  // Once a second: with 10,000 connections open a scrape costs the gateway about 20 ms (prom-client's
  // process_open_fds lists /proc/self/fd, nodejs_active_handles walks every handle).
  const scraped = new PeakSampler(async () => {
    const m = await scrapeMetrics(r.gw.url, Object.values(SAMPLED));
    return Object.fromEntries(Object.entries(SAMPLED).map(([key, name]) => [key, m[name]]));
  }, 1000);
  const overflowsBefore = listenOverflows();
  const config: BurstConfig = {
    baseUrl: r.gw.url,
    ids: r.ids,
    requests: o.requests,
    rampMs: o.rampS * 1000,
    timeoutMs: r.deadlineMs + 30_000,
  };
  const load = WorkerProcess.start(`load ${transport}`, new URL("./burst-worker.ts", import.meta.url), config);
  r.teardown.add(`load ${transport}`, () => load.stop());
  let result: BurstResult;
  let cpuS: CpuSeconds;
  try {
    await load.next("ready", 30_000);
    const pids = { ...r.pids, load: load.pid };
    const ticksBefore = sampleTicks(pids);
    progress(`${label}: ${o.requests} requests issued over ${o.rampS} s, each held ${o.holdS} s`);
    const issued = await load.next("issued", config.rampMs + 120_000);
    progress(`${label}: all issued in ${(Number(issued.issueMs) / 1000).toFixed(1)} s; waiting for the answers`);
    ({ result } = (await load.next("result", config.timeoutMs + 60_000)) as unknown as { result: BurstResult });
    cpuS = cpuSecondsBetween(ticksBefore, sampleTicks(pids), r.hz);
  } finally {
    // Stopped whatever happened: a sampler left running would keep this process alive after the teardown.
    await Promise.all([load.stop(), rss.stop(), scraped.stop()]);
  }
  const overflowsAfter = listenOverflows();
  const [rssPeaks, scrapedPeaks, stats, countersAfter] = await Promise.all([
    rss.stop(),
    scraped.stop(),
    deviceStats(r.devices),
    scrapeMetrics(r.gw.url, COUNTERS),
  ]);
  const gatewayPeak = Math.max(rssPeaks.max.gateway ?? 0, exactPeaks ? (memoryOf(gatewayPid)?.peakRssBytes ?? 0) : 0);
  const agentPeak =
    agentPid === undefined ? 0 : Math.max(rssPeaks.max.agent ?? 0, exactPeaks ? (memoryOf(agentPid)?.peakRssBytes ?? 0) : 0);
  const gatewayCounters: Record<string, number> = {};
  for (const name of COUNTERS) {
    const grew = (countersAfter[name] ?? 0) - (countersBefore[name] ?? 0);
    if (grew > 0) gatewayCounters[name] = grew;
  }
  const errors = result.requests - result.succeeded;
  const peakMiB = mib(gatewayPeak);
  return {
    label,
    transport,
    burst: result,
    errors,
    inFlight: {
      gatewayGauge: transport === "xmpp" ? (scrapedPeaks.max.inflight ?? 0) : null,
      heldAtDevices: stats.peakHeld,
      clientOutstanding: result.peakOutstanding,
    },
    gatewayRssMiB: { before: rssBefore, peak: peakMiB, after: mib(memoryOf(gatewayPid)?.rssBytes) },
    agentPeakRssMiB: transport === "xmpp" ? mib(agentPeak) : null,
    gatewayMemoryMiB: {
      heapUsed: mib(scrapedPeaks.max.heapUsed),
      heapTotal: mib(scrapedPeaks.max.heapTotal),
      external: mib(scrapedPeaks.max.external),
    },
    scrapes: { samples: scrapedPeaks.samples, failed: scrapedPeaks.failures },
    listenOverflows: overflowsBefore === undefined || overflowsAfter === undefined ? null : overflowsAfter - overflowsBefore,
    cpuS,
    gatewayCounters,
    meetsTargets: errors <= SOAK_TARGETS.errors && peakMiB < SOAK_TARGETS.gatewayPeakRssBelowMiB[transport],
  };
}
