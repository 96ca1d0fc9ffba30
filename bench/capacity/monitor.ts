// Which commands the gateway sends itself and which its Lua scripts run inside Redis: INFO commandstats
// counts both (a ZADD inside an EVALSHA is a ZADD there too), and only the first are round trips. MONITOR
// says, for every command, whether it came from a client connection or from "lua". It slows Redis down, so
// it runs over a small sample batch of its own, after the batch whose CPU and memory are measured.
import net from "node:net";

/** Commands of the probe's own connections (INFO, MEMORY, SCAN, ...), never the gateway's. */
const PROBE = new Set(["info", "memory", "scan", "ping", "client", "hello", "select", "config", "command", "dbsize", "monitor"]);

export interface MonitorCounts {
  /** Commands sent by clients (the gateway's connections): round trips, pipelined or not. */
  client: Record<string, number>;
  /** Commands run by scripts (EVAL/EVALSHA/FCALL) inside Redis. */
  script: Record<string, number>;
}

/** Lines of MONITOR: `+1700000000.123456 [0 127.0.0.1:5000] "evalsha" ...` or `[0 lua] "zadd" ...`. */
export function countMonitorLines(text: string, into: MonitorCounts): void {
  for (const line of text.split("\r\n")) {
    const m = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"/.exec(line);
    if (!m) continue;
    const name = (m[2] ?? "").toLowerCase();
    if (PROBE.has(name)) continue;
    const bucket = m[1] === "lua" ? into.script : into.client;
    bucket[name] = (bucket[name] ?? 0) + 1;
  }
}

/** Runs `work` with MONITOR on, and counts what Redis executed meanwhile, by source and command. */
export async function monitorDuring(port: number, work: () => Promise<void>): Promise<MonitorCounts> {
  const counts: MonitorCounts = { client: {}, script: {} };
  const socket = net.connect({ port, host: "127.0.0.1" });
  let pending = "";
  let started = false;
  const ready = new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.setEncoding("utf8").on("data", (chunk: string) => {
      pending += chunk;
      const cut = pending.lastIndexOf("\r\n");
      if (cut < 0) return;
      const complete = pending.slice(0, cut + 2);
      pending = pending.slice(cut + 2);
      if (!started && complete.startsWith("+OK\r\n")) {
        started = true;
        resolve();
        countMonitorLines(complete.slice(5), counts);
        return;
      }
      if (started) countMonitorLines(complete, counts);
    });
  });
  socket.write("*1\r\n$7\r\nMONITOR\r\n");
  await ready;
  try {
    await work();
  } finally {
    socket.destroy();
  }
  return counts;
}

export function perItem(counts: Record<string, number>, n: number): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([name, c]) => [name, c / n]));
}

export const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
