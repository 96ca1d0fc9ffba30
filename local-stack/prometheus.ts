// A throwaway Prometheus (Debian's `prometheus`) scraping the given targets, with the shipped configuration
// (deploy/prometheus/prometheus.yml and its rules) adapted for the run: these targets, a 1 s interval.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse, stringify } from "yaml";
import { freePort, onFreePorts, pollUntil, PortTaken } from "./ports.js";
import { spawnChild, type ChildHandle } from "./process.js";
import { makeTempDir, removeDir } from "./tempdir.js";

const SHIPPED = fileURLToPath(new URL("../deploy/prometheus/", import.meta.url));

export interface PrometheusServer {
  readonly url: string;
  /** Runs an instant query (`/api/v1/query`) and returns its result vector. */
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
}

interface ScrapeConfig {
  global?: Record<string, unknown>;
  rule_files?: string[];
  scrape_configs?: Array<{ job_name: string; static_configs?: Array<{ targets: string[] }> }>;
}

export async function startPrometheus(targets: readonly string[]): Promise<PrometheusServer> {
  const dir = await makeTempDir("prometheus-");
  const config = parse(await readFile(path.join(SHIPPED, "prometheus.yml"), "utf8")) as ScrapeConfig;
  config.global = { ...config.global, scrape_interval: "1s", evaluation_interval: "1s" };
  config.rule_files = (config.rule_files ?? []).map((f) => path.join(SHIPPED, f));
  const job = config.scrape_configs?.find((c) => c.job_name === "gateway");
  if (!job) throw new Error('deploy/prometheus/prometheus.yml has no "gateway" job');
  job.static_configs = [{ targets: [...targets] }];
  const configFile = path.join(dir, "prometheus.yml");
  await writeFile(configFile, stringify(config));

  let port = 0;
  let handle: ChildHandle;
  try {
    // --web.listen-address needs the port before start, and Prometheus does not report one it picked.
    handle = await onFreePorts(async () => {
      port = await freePort();
      const child = await spawnChild(
        "prometheus",
        [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`],
        { name: "prometheus" },
      );
      try {
        await pollUntil(
          "prometheus ready",
          async () => {
            if (child.hasExited()) throw new PortTaken(`prometheus exited:\n${child.output().slice(-2000)}`);
            return (await fetch(`http://127.0.0.1:${port}/-/ready`).catch(() => undefined))?.status === 200;
          },
          { timeoutMs: 20_000, intervalMs: 100 },
        );
      } catch (err) {
        await child.stop();
        throw err;
      }
      return child;
    });
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await res.json()) as {
        status: string;
        data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
      };
      if (body.status !== "success" || !body.data) throw new Error(`query ${expr} failed: ${JSON.stringify(body)}`);
      return body.data.result;
    },
    async stop() {
      await handle.stop();
      await removeDir(dir);
    },
  };
}
