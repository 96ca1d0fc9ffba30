// The Compose stack, each file checked by the tool that will consume it, or the closest one that runs here
// without a Docker engine:
//
//   deploy/docker-compose.yml                              docker compose config (or docker-compose 1.29)
//   deploy/compose/prosody.cfg.lua, haproxy.cfg            prosodyctl check config, haproxy -c; equal to
//                                                          the templates rendered for the stack
//   deploy/compose/sentinel.yml (override)                 docker compose config, with docker-compose.yml
//   deploy/compose/sentinel.conf, sentinel-start.sh        redis-server (the image's 7.0) runs the data nodes'
//                                                          commands and a Sentinel through the script; sh -n
//
// and the values the files share (ports, names, secrets, drain times) checked against each other
// and against the gateway's and the agent's own configuration loaders.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { after, it } from "node:test";
import { parse as parseYaml } from "yaml";
import { loadAgentConfig } from "../../adapters/device-agent/config.js";
import { COMPOSE, COMPOSE_HAPROXY, COMPOSE_PROSODY, renderComposeConfigs } from "../../deploy/compose/render.js";
import { checkHaproxyConfig } from "../../local-stack/haproxy.js";
import { freePort, onFreePorts, pollUntil, PortTaken } from "../../local-stack/ports.js";
import { spawnChild, type ChildHandle } from "../../local-stack/process.js";
import { launchRedisServer, redisCommand } from "../../local-stack/redis.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { loadConfig } from "../../gateway/config.js";
import { parseDevicesFile } from "../../gateway/registry/import.js";
import { deploy, list, obj, read, root, run, str, type Json } from "../helpers/deploy-kit.js";
import { execForm } from "../helpers/dockerfile.js";

/** Durations as Compose and Prometheus write them (40s, 1m30s, 500ms), in milliseconds. */
function durationMs(text: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
  assert.ok(parts.length > 0 && parts.map((p) => p[0]).join("") === text, `not a duration: ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
  return parts.reduce((sum, p) => sum + Number(p[1]) * unit[p[2] as keyof typeof unit], 0);
}

function composeTool(): { cmd: string; args: string[]; version: string } {
  const plugin = spawnSync("docker", ["compose", "version"], { encoding: "utf8" });
  if (plugin.status === 0) return { cmd: "docker", args: ["compose"], version: plugin.stdout.trim() };
  const v1 = spawnSync("docker-compose", ["version", "--short"], { encoding: "utf8" });
  if (v1.status === 0) return { cmd: "docker-compose", args: [], version: v1.stdout.trim() };
  assert.fail("neither `docker compose` nor `docker-compose` is installed: run local-stack/ensure-system-deps.sh (as root)");
}

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  stop_grace_period?: string;
  healthcheck?: Json;
  depends_on?: Record<string, unknown> | string[];
}

/** The Compose file as Compose reads it: YAML merge keys applied, ${VAR:-default} at its default. */
function composeFile(): Record<string, ComposeService> {
  const text = read("deploy/docker-compose.yml").replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1");
  assert.doesNotMatch(text, /\$\{/, "every variable has a default");
  const doc = obj(parseYaml(text, { merge: true }), "compose file");
  return obj(doc.services, "services") as Record<string, ComposeService>;
}

function mounts(s: ComposeService): Array<{ host: string; container: string }> {
  return (s.volumes ?? []).map((v) => {
    const [host, container] = v.split(":");
    return { host: path.resolve(deploy, host as string), container: container as string };
  });
}

const gatewayServices = (services: Record<string, ComposeService>) =>
  Object.entries(services).filter(([, s]) => s.environment?.XMPP_COMPONENT_SECRET !== undefined);

it("docker compose config accepts deploy/docker-compose.yml, and refuses a broken one", () => {
  const tool = composeTool();
  const env = { ...process.env, GATEWAY_ADMIN_TOKEN: "", GRAFANA_ADMIN_PASSWORD: "" };
  const ok = run(tool.cmd, [...tool.args, "-f", "docker-compose.yml", "config", "-q"], { cwd: deploy, env });
  assert.equal(ok.status, 0, `${tool.version}: ${ok.out}`);
  // The validator reads the schema: the file with a misspelt key, given on stdin, is refused.
  const misspelt = read("deploy/docker-compose.yml").replace("retries: 10", "retrys: 10");
  const broken = run(tool.cmd, [...tool.args, "-f", "-", "config", "-q"], { cwd: deploy, env, input: misspelt });
  assert.notEqual(broken.status, 0, "a misspelt healthcheck key must be refused");
  assert.match(broken.out, /retrys/);
});

it("the Compose stack's files exist and its gateways' settings pass the gateway's own checks", () => {
  const services = composeFile();
  for (const [name, s] of Object.entries(services)) {
    for (const m of mounts(s)) assert.ok(existsSync(m.host), `${name}: mounted ${m.host} exists`);
    if (s.build) {
      const context = path.resolve(deploy, s.build.context);
      assert.ok(statSync(context).isDirectory(), `${name}: build context`);
      assert.ok(existsSync(path.join(context, s.build.dockerfile ?? "Dockerfile")), `${name}: Dockerfile`);
    }
    for (const dep of Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {})) {
      assert.ok(services[dep], `${name} depends on a service that exists: ${dep}`);
    }
  }
  const image = services["gateway-a"]?.build;
  assert.deepEqual(image && { context: path.resolve(deploy, image.context), dockerfile: image.dockerfile }, {
    context: root.replace(/\/$/, ""),
    dockerfile: "deploy/Dockerfile",
  });

  const gateways = gatewayServices(services);
  assert.deepEqual(
    gateways.map(([n]) => n),
    [...COMPOSE.gateways],
  );
  for (const [name, s] of gateways) {
    const env = s.environment ?? {};
    const devicesFile = mounts(s).find((m) => m.container === env.GATEWAY_DEVICES_FILE);
    assert.ok(devicesFile, `${name}: GATEWAY_DEVICES_FILE is mounted`);
    const config = loadConfig({ ...env, GATEWAY_DEVICES_FILE: devicesFile.host });
    assert.equal(config.xmpp.secret, COMPOSE.componentSecret, "the secret Prosody's Component entry has");
    assert.equal(config.xmpp.domain, COMPOSE.componentDomain);
    assert.equal(config.http.port, COMPOSE.gatewayPort);
    assert.equal(config.instanceId, name);
    const xmpp = new URL(config.xmpp.service);
    assert.deepEqual([xmpp.hostname, Number(xmpp.port)], ["prosody", COMPOSE.componentPort]);
    assert.ok(services[new URL(config.redis.url).hostname], "REDIS_URL names a service");
    assert.equal(config.devices.jidTemplate, `{id}@${COMPOSE.vhost}/agent`);
    // Compose's stop waits out the whole drain before it kills; the drain waits out a request's deadline.
    assert.ok(
      durationMs(s.stop_grace_period ?? "10s") > config.drainGraceMs + config.drainTimeoutMs,
      `${name}: stop_grace_period covers the drain`,
    );
    assert.ok(config.drainTimeoutMs >= config.exchange.timeoutMs, `${name}: the drain lets a request run to its deadline`);
    assert.equal(s.ports, undefined, `${name} is reached through HAProxy only`);
  }
  for (const [name, s] of Object.entries(services)) {
    if (s.image === services["gateway-a"]?.image && gatewayServices({ [name]: s }).length === 0) {
      assert.deepEqual(s.healthcheck, { disable: true }, `${name} runs no HTTP server on GATEWAY_PORT: the image's health check is off`);
    }
  }
});

it("the Compose stack's devices, agent accounts, fleet and registry agree", () => {
  const services = composeFile();
  const sim = services.devices;
  assert.ok(sim?.environment?.SIMULATED_DEVICES);
  assert.deepEqual(sim.command, ["node", "dist/adapters/simulated-device/main.js"]);
  const ports = new Map(
    sim.environment.SIMULATED_DEVICES.split(",")
      .map((p) => p.split("=") as [string, string])
      .map(([id, port]) => [id, Number(port)]),
  );

  const agent = services.agent;
  assert.ok(agent?.environment);
  assert.deepEqual(agent.command, ["node", "dist/adapters/device-agent/main.js"]);
  const fleet = mounts(agent).find((m) => m.container === agent.environment?.AGENT_FLEET_FILE);
  assert.ok(fleet, "AGENT_FLEET_FILE is mounted");
  const config = loadAgentConfig({ ...agent.environment, AGENT_FLEET_FILE: fleet.host });
  const accounts = new Map(
    read("deploy/compose/accounts.txt")
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("#"))
      .map((l) => l.trim().split(/\s+/) as [string, string]),
  );
  assert.equal(config.agents.length, accounts.size, "one account per device behind the agent");
  for (const a of config.agents) {
    assert.equal(accounts.get(a.username), a.password, `${a.username}: Prosody account and fleet entry agree`);
    assert.equal(a.domain, COMPOSE.vhost);
    assert.equal(a.gatewayJid, COMPOSE.componentDomain);
    const local = new URL(a.localUrl);
    assert.equal(local.hostname, "devices");
    assert.equal(Number(local.port), ports.get(a.username), `${a.username}: the agent calls its own simulated device`);
    assert.equal(new URL(a.service).hostname, "prosody");
    assert.equal(Number(new URL(a.service).port), COMPOSE.c2sPort);
  }
  assert.equal(services.prosody?.environment?.XMPP_VHOST, COMPOSE.vhost, "accounts are created on the devices' domain");

  const registry = parseDevicesFile(read("deploy/compose/devices.yml"), "devices.yml");
  for (const d of registry) {
    assert.ok(ports.has(d.id), `${d.id} is a simulated device`);
    if (d.httpTarget) assert.equal(d.httpTarget, `http://devices:${ports.get(d.id)}`, `${d.id}: httpTarget is its simulated device`);
    if (d.transport !== "http") assert.ok(accounts.has(d.id), `${d.id} is reached over XMPP, so it has an agent`);
  }
});

it("the Compose stack's Prosody and HAProxy files are the templates rendered for it, and pass their checkers", async () => {
  const rendered = await renderComposeConfigs();
  assert.equal(
    readFileSync(COMPOSE_PROSODY, "utf8"),
    rendered.prosody,
    "deploy/compose/prosody.cfg.lua is stale: run node --import tsx deploy/compose/render.ts",
  );
  assert.equal(
    readFileSync(COMPOSE_HAPROXY, "utf8"),
    rendered.haproxy,
    "deploy/compose/haproxy.cfg is stale: run node --import tsx deploy/compose/render.ts",
  );

  const prosody = run("prosodyctl", ["--config", COMPOSE_PROSODY, "check", "config"]);
  assert.equal(prosody.status, 0, prosody.out);
  assert.match(prosody.out, /All checks passed/);
  await checkHaproxyConfig(COMPOSE_HAPROXY);
  const sh = run("sh", ["-n", path.join(deploy, "compose", "prosody-start.sh")]);
  assert.equal(sh.status, 0, sh.out);

  const services = composeFile();
  const byTarget = (name: string) => new Map(mounts(services[name] as ComposeService).map((m) => [m.container, m.host]));
  assert.equal(byTarget("prosody").get("/etc/prosody/prosody.cfg.lua"), COMPOSE_PROSODY);
  assert.equal(byTarget("prosody").get("/etc/prosody/start.sh"), path.join(deploy, "compose", "prosody-start.sh"));
  assert.equal(byTarget("prosody").get("/etc/prosody/accounts.txt"), path.join(deploy, "compose", "accounts.txt"));
  assert.deepEqual(
    execForm(
      read("deploy/compose/prosody.Dockerfile")
        .split("\n")
        .find((l) => l.startsWith("CMD")) ?? "",
    ),
    ["sh", "/etc/prosody/start.sh"],
  );
  assert.equal(byTarget("haproxy").get("/usr/local/etc/haproxy/haproxy.cfg"), COMPOSE_HAPROXY);
  assert.deepEqual(services.haproxy?.ports, [`8080:${COMPOSE.frontendPort}`]);
  const servers = [...rendered.haproxy.matchAll(/^\s*server (\S+) (\S+):(\d+)/gm)].map((m) => [m[1], m[2], Number(m[3])]);
  assert.deepEqual(
    servers,
    COMPOSE.gateways.map((g) => [g, g, COMPOSE.gatewayPort]),
    "HAProxy balances over the gateway services",
  );
});

it("the Compose stack's Prometheus scrapes its gateways, and Grafana reads that Prometheus", () => {
  const services = composeFile();
  const prometheus = services.prometheus;
  assert.ok(prometheus);
  const configDir = mounts(prometheus).find((m) => m.container === "/etc/prometheus");
  assert.equal(configDir?.host, path.join(deploy, "prometheus"), "the shipped deploy/prometheus, as it is");
  const scrape = obj(parseYaml(read("deploy/prometheus/prometheus.yml")), "prometheus.yml");
  const job = list(scrape.scrape_configs, "scrape_configs")
    .map((j) => obj(j, "job"))
    .find((j) => j.job_name === "gateway");
  assert.ok(job, "a job named gateway, which the alerts and the dashboard select");
  const targets = list(job.static_configs, "static_configs").flatMap((c) => list(obj(c, "static config").targets, "targets"));
  assert.deepEqual(
    targets,
    COMPOSE.gateways.map((g) => `${g}:${COMPOSE.gatewayPort}`),
  );
  // The server is the version whose promtool checks these files here.
  const promtool = run("promtool", ["--version"]);
  const version = /version (\d+\.\d+\.\d+)/.exec(promtool.out)?.[1];
  assert.equal(prometheus.image, `prom/prometheus:v${version}`);

  const grafana = services.grafana;
  assert.ok(grafana?.environment);
  const at = new Map(mounts(grafana).map((m) => [m.container, m.host]));
  assert.equal(at.get("/etc/grafana/provisioning"), path.join(deploy, "grafana", "provisioning"));
  const datasources = obj(parseYaml(read("deploy/grafana/provisioning/datasources/prometheus.yml")), "datasources");
  const ds = obj(list(datasources.datasources, "datasources")[0], "datasource");
  assert.equal(ds.type, "prometheus");
  assert.equal(ds.url, "http://prometheus:9090");
  assert.equal(
    durationMs(str(obj(ds.jsonData, "jsonData").timeInterval, "timeInterval")),
    durationMs(str(obj(scrape.global, "global").scrape_interval, "scrape_interval")),
  );
  assert.deepEqual(prometheus.ports, ["9090:9090"]);
  const providers = obj(parseYaml(read("deploy/grafana/provisioning/dashboards/xmpp-gateway.yml")), "providers");
  const dashboards = str(obj(obj(list(providers.providers, "providers")[0], "provider").options, "options").path, "path");
  assert.equal(at.get(dashboards), path.join(deploy, "grafana", "dashboards"), "the provider reads where the dashboards are mounted");
  const home = grafana.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? "";
  assert.ok(home.startsWith(`${dashboards}/`) && existsSync(path.join(deploy, "grafana", "dashboards", path.basename(home))));
  // The dashboard is checked against the schema types of the Grafana the stack runs.
  const schema = (
    JSON.parse(readFileSync(createRequire(import.meta.url).resolve("@grafana/schema/package.json"), "utf8")) as { version: string }
  ).version;
  const tag = /^grafana\/grafana:(\d+\.\d+)\./.exec(grafana.image ?? "")?.[1];
  assert.equal(tag, schema.split(".").slice(0, 2).join("."), `grafana image ${grafana.image} and @grafana/schema ${schema}`);
});

// The Sentinel variant: deploy/compose/sentinel.yml over deploy/docker-compose.yml.

const SENTINEL_OVERRIDE = path.join(deploy, "compose", "sentinel.yml");
const SENTINEL_CONF = path.join(deploy, "compose", "sentinel.conf");
const SENTINEL_START = path.join(deploy, "compose", "sentinel-start.sh");

const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** Compose's own merge of both files (`config`), as the services it would run. */
function composeWithSentinel(override = SENTINEL_OVERRIDE): { status: number | null; out: string } {
  const tool = composeTool();
  const env = { ...process.env, GATEWAY_ADMIN_TOKEN: "", GRAFANA_ADMIN_PASSWORD: "" };
  return run(tool.cmd, [...tool.args, "-f", "docker-compose.yml", "-f", override, "config"], { cwd: deploy, env });
}

interface RenderedService extends Omit<ComposeService, "volumes"> {
  /** docker-compose 1.29 writes "host:container:ro"; docker compose v2 the long form. */
  volumes?: Array<string | { source: string; target: string }>;
}

let sentinelStack: Record<string, RenderedService> | undefined;
function renderedWithSentinel(): Record<string, RenderedService> {
  if (sentinelStack) return sentinelStack;
  const r = composeWithSentinel();
  assert.equal(r.status, 0, r.out);
  const doc = obj(parseYaml(r.out), "rendered compose file");
  sentinelStack = obj(doc.services, "services") as Record<string, RenderedService>;
  return sentinelStack;
}

/** Mounts of a rendered service, by container path: host paths come out absolute. */
const renderedMounts = (s: RenderedService | undefined): Map<string, string> =>
  new Map(
    (s?.volumes ?? []).map((v) => {
      if (typeof v !== "string") return [v.target, v.source];
      const [host, container] = v.split(":");
      return [container as string, host as string];
    }),
  );

/** The Sentinel configuration's directives, in order (comments and blank lines dropped). */
const sentinelDirectives = (text: string): string[][] =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.split(/\s+/));

/** Value that follows `flag` in a command, e.g. --replicaof HOST PORT. */
const argsAfter = (command: readonly string[] | undefined, flag: string, count = 1): string[] | undefined => {
  const i = (command ?? []).indexOf(flag);
  return i < 0 ? undefined : (command ?? []).slice(i + 1, i + 1 + count);
};

it("docker compose config accepts deploy/docker-compose.yml with compose/sentinel.yml, and refuses a broken override", async () => {
  assert.ok(renderedWithSentinel().redis, "renders, with the base file's redis");
  // A misspelt key in the override alone is refused too: Compose validates every file it merges.
  const dir = await makeTempDir("compose-sentinel-");
  cleanups.push(() => removeDir(dir));
  const broken = path.join(dir, "sentinel.yml");
  await writeFile(broken, (await readFile(SENTINEL_OVERRIDE, "utf8")).replace("retries: 10", "retrys: 10"));
  const refused = composeWithSentinel(broken);
  assert.notEqual(refused.status, 0, "a misspelt healthcheck key must be refused");
  assert.match(refused.out, /retrys/);
});

it("with compose/sentinel.yml, the gateways have no REDIS_URL and find the primary through the three Sentinels", () => {
  const services = renderedWithSentinel();
  const sentinels = Object.entries(services)
    .filter(([, s]) => (s.command ?? []).includes("/usr/local/etc/redis/sentinel-start.sh"))
    .map(([name]) => name);
  assert.deepEqual(sentinels, ["sentinel-1", "sentinel-2", "sentinel-3"]);
  const directives = sentinelDirectives(readFileSync(SENTINEL_CONF, "utf8"));
  const sentinelPort = Number(directives.find((d) => d[0] === "port")?.[1]);
  const monitor = directives.find((d) => d[0] === "sentinel" && d[1] === "monitor");
  assert.ok(monitor, "sentinel.conf has a monitor line");

  const gateways = Object.entries(services).filter(([, s]) => s.environment?.XMPP_COMPONENT_SECRET !== undefined);
  assert.deepEqual(
    gateways.map(([n]) => n),
    [...COMPOSE.gateways],
  );
  for (const [name, s] of gateways) {
    const env = s.environment ?? {};
    // Compose cannot remove a variable the base file sets: empty, which the gateway reads as unset.
    assert.ok(env.REDIS_URL === undefined || env.REDIS_URL === "", `${name}: no REDIS_URL (${env.REDIS_URL})`);
    const devicesFile = renderedMounts(s).get(env.GATEWAY_DEVICES_FILE ?? "");
    assert.ok(devicesFile && existsSync(devicesFile), `${name}: GATEWAY_DEVICES_FILE is mounted`);
    const config = loadConfig({ ...env, GATEWAY_DEVICES_FILE: devicesFile });
    assert.ok(config.redis.sentinel, `${name} runs in Sentinel mode`);
    assert.deepEqual(
      config.redis.sentinel.sentinels,
      sentinels.map((host) => ({ host, port: sentinelPort })),
      `${name}: REDIS_SENTINELS names the three Sentinel services on the port of sentinel.conf`,
    );
    assert.equal(config.redis.sentinel.name, monitor[2], `${name}: REDIS_SENTINEL_NAME is the name Sentinel monitors`);
    assert.equal(config.redis.sentinel.tls, false);
    const deps = obj(s.depends_on, `${name} depends_on`);
    for (const sentinel of sentinels)
      assert.equal(obj(deps[sentinel], sentinel).condition, "service_healthy", `${name} starts once ${sentinel} answers`);
  }
});

it("with compose/sentinel.yml, the Sentinels monitor the primary with quorum 2 and the replica follows it", () => {
  const services = renderedWithSentinel();
  const directives = sentinelDirectives(readFileSync(SENTINEL_CONF, "utf8"));
  const at = (d: readonly string[]) => directives.findIndex((x) => x.join(" ") === d.join(" "));
  const monitorAt = directives.findIndex((d) => d[0] === "sentinel" && d[1] === "monitor");
  const [, , name, host, port, quorum] = directives[monitorAt] ?? [];
  // Sentinel reads its file in order: host names must be on before the monitor line names one.
  assert.ok(at(["sentinel", "resolve-hostnames", "yes"]) >= 0 && at(["sentinel", "resolve-hostnames", "yes"]) < monitorAt);
  assert.ok(at(["sentinel", "announce-hostnames", "yes"]) >= 0, "clients are handed names, not container addresses");
  assert.equal(port, "6379");
  const sentinels = ["sentinel-1", "sentinel-2", "sentinel-3"];
  assert.equal(Number(quorum), 2, "quorum 2");
  assert.ok(Number(quorum) > sentinels.length / 2, "a quorum that is a majority: two partitioned halves cannot both fail over");
  for (const d of directives.filter(
    (x) => x[0] === "sentinel" && x.length >= 4 && !["monitor", "resolve-hostnames", "announce-hostnames"].includes(x[1] ?? ""),
  ))
    assert.equal(d[2], name, `${d.join(" ")}: the monitored name`);

  // The primary is the base stack's redis; the replica replicates it; each announces its service name.
  const primary = services[host ?? ""];
  assert.ok(primary, `the monitored host ${host} is a service`);
  assert.equal(argsAfter(primary.command, "--replicaof"), undefined, `${host} starts as the primary`);
  const replica = services["redis-replica"];
  assert.deepEqual(argsAfter(replica?.command, "--replicaof", 2), [host, port]);
  for (const [n, s] of [
    [host, primary],
    ["redis-replica", replica],
  ] as const) {
    assert.deepEqual(argsAfter(s?.command, "--replica-announce-ip"), [n], `${n} announces its service name`);
    assert.deepEqual(argsAfter(s?.command, "--appendonly"), ["yes"], `${n} persists: a restarted primary must not come back empty`);
    assert.equal(s?.image, services.redis?.image);
  }

  for (const n of sentinels) {
    const s = services[n];
    assert.equal(s?.image, primary.image, `${n}: the data nodes' Redis`);
    assert.deepEqual(s?.command, ["sh", "/usr/local/etc/redis/sentinel-start.sh", n], `${n} announces its own service name`);
    const m = renderedMounts(s);
    assert.equal(m.get("/usr/local/etc/redis/sentinel.conf"), SENTINEL_CONF);
    assert.equal(m.get("/usr/local/etc/redis/sentinel-start.sh"), SENTINEL_START);
    const healthcheck = list(obj(s?.healthcheck, `${n} healthcheck`).test, "test");
    assert.deepEqual(argsAfter(healthcheck as string[], "-p"), [directives.find((d) => d[0] === "port")?.[1]]);
  }
  // The image's Redis is the one that runs sentinel.conf in the next test.
  const local = /v=(\d+\.\d+)\./.exec(run("redis-server", ["--version"]).out)?.[1];
  assert.equal(primary.image, `redis:${local}`);
});

/**
 * A data node of the Sentinel variant started here with its Compose command, on loopback: `--replicaof redis
 * 6379` made the primary's port here, and the announced service name "localhost", a name this machine resolves.
 */
async function dataNode(
  dir: string,
  service: string,
  command: readonly string[],
  primaryPort?: number,
): Promise<{ port: number; handle: ChildHandle }> {
  assert.equal(command[0], "redis-server");
  const args = command.slice(1).map((a, i, all) => {
    if (all[i - 1] === "--replica-announce-ip") return "localhost";
    if (all[i - 1] === "--replicaof") return "127.0.0.1";
    if (all[i - 2] === "--replicaof") return String(primaryPort);
    return a;
  });
  const nodeDir = path.join(dir, service);
  await mkdir(nodeDir);
  return onFreePorts(async () => {
    const port = await freePort();
    const all = [...args, "--port", String(port), "--bind", "127.0.0.1", "--dir", nodeDir, "--daemonize", "no"];
    const handle = await launchRedisServer(nodeDir, service, port, all, path.join(nodeDir, "redis.log"));
    return { port, handle };
  });
}

it("Redis 7.0 runs the variant's data nodes with their Compose commands, and compose/sentinel.conf through sentinel-start.sh", async () => {
  const sh = run("sh", ["-n", SENTINEL_START]);
  assert.equal(sh.status, 0, sh.out);
  const services = renderedWithSentinel();
  const dir = await makeTempDir("compose-sentinel-");
  cleanups.push(() => removeDir(dir));
  const primary = await dataNode(dir, "redis", services.redis?.command ?? []);
  cleanups.push(() => primary.handle.stop("SIGKILL"));
  const replica = await dataNode(dir, "redis-replica", services["redis-replica"]?.command ?? [], primary.port);
  cleanups.push(() => replica.handle.stop("SIGKILL"));
  await pollUntil("the replica to be in sync with the primary", async () =>
    (await redisCommand(replica.port, ["INFO", "replication"])).includes("master_link_status:up"),
  );
  assert.match(await redisCommand(primary.port, ["INFO", "replication"]), new RegExp(`slave0:ip=localhost,port=${replica.port},`));
  assert.match(await redisCommand(primary.port, ["INFO", "persistence"]), /aof_enabled:1/);
  // The image's entry point (which drops to the user redis), reduced to running its arguments.
  const bin = path.join(dir, "bin");
  await mkdir(bin);
  await writeFile(path.join(bin, "docker-entrypoint.sh"), '#!/bin/sh\nexec "$@"\n');
  await chmod(path.join(bin, "docker-entrypoint.sh"), 0o755);

  // The shipped file with the addresses of this machine: the primary on its free port, loopback only.
  const shipped = await readFile(SENTINEL_CONF, "utf8");
  const template = path.join(dir, "sentinel.conf");
  const data = path.join(dir, "data");
  await mkdir(data);
  let sentinel: ChildHandle | undefined;
  let local = "";
  cleanups.push(async () => sentinel?.stop("SIGKILL"));
  const port = await onFreePorts(async () => {
    const p = await freePort();
    local = shipped
      .replace(/^port 26379$/m, `port ${p}\nbind 127.0.0.1`)
      .replace(/^(sentinel monitor \S+) redis 6379 (\d+)$/m, `$1 127.0.0.1 ${primary.port} $2`);
    assert.notEqual(local, shipped);
    await writeFile(template, local);
    // The script copies the file only when there is no copy yet: none left by an attempt on a taken port.
    await rm(path.join(data, "sentinel.conf"), { force: true });
    const handle = await spawnChild("sh", [SENTINEL_START, "sentinel-test"], {
      name: "sentinel",
      env: { PATH: `${bin}:${process.env.PATH ?? ""}`, SENTINEL_TEMPLATE: template, SENTINEL_DIR: data },
    });
    sentinel = handle;
    const early = new AbortController();
    void handle.exited.then((e) => early.abort(new Error(`the Sentinel exited (${e.code ?? e.signal})`)));
    try {
      await pollUntil("the Sentinel to answer PING", async () => (await redisCommand(p, ["PING"]).catch(() => "")) === "PONG", {
        timeoutMs: 30_000,
        signal: early.signal,
      });
      // The script execs redis-server: the PONG is from our process, not from another server on the port.
      assert.match(await redisCommand(p, ["INFO", "server"]), new RegExp(`process_id:${handle.pid}\r\n`));
    } catch (err) {
      await handle.stop("SIGKILL");
      const message = `${(err as Error).message}\n${handle.output()}`;
      throw handle.output().includes("Address already in use") ? new PortTaken(message) : new Error(message);
    }
    return p;
  });

  const name = /^sentinel monitor (\S+)/m.exec(shipped)?.[1] ?? "";
  const info = await redisCommand(port, ["INFO", "sentinel"]);
  assert.match(info, new RegExp(`name=${name},status=ok,address=127\\.0\\.0\\.1:${primary.port},`), info);
  // The replica, from the primary's INFO, by the name it announces (resolve-hostnames lets Sentinel take it).
  await pollUntil("the Sentinel to know the replica", async () =>
    (await redisCommand(port, ["INFO", "sentinel"])).includes(`name=${name},status=ok,address=127.0.0.1:${primary.port},slaves=1,`),
  );
  const replicas = run("redis-cli", ["-p", String(port), "SENTINEL", "REPLICAS", name]);
  assert.match(replicas.out, new RegExp(`^name\\nlocalhost:${replica.port}$`, "m"), replicas.out);
  const announce = run("redis-cli", ["-p", String(port), "SENTINEL", "CONFIG", "GET", "announce-ip"]);
  assert.deepEqual(announce.out.trim().split("\n"), ["announce-ip", "sentinel-test"], "the name given to the script");
  // It runs on its own copy, which it rewrites; the mounted file stays as it is.
  await pollUntil("the Sentinel to rewrite its copy", async () =>
    (await readFile(path.join(data, "sentinel.conf"), "utf8")).includes("sentinel myid"),
  );
  assert.equal(await readFile(template, "utf8"), local);
});
