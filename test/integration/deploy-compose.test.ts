// The Compose stack, each file checked by the tool that will consume it, or the closest one that runs here
// without a Docker engine:
//
//   deploy/docker-compose.yml                              docker compose config (or docker-compose 1.29)
//   deploy/compose/prosody.cfg.lua, haproxy.cfg            prosodyctl check config, haproxy -c; equal to
//                                                          the templates rendered for the stack
//
// and the values the files share (ports, names, secrets, drain times) checked against each other
// and against the gateway's and the agent's own configuration loaders.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { it } from "node:test";
import { parse as parseYaml } from "yaml";
import { loadAgentConfig } from "../../adapters/device-agent/config.js";
import { COMPOSE, COMPOSE_HAPROXY, COMPOSE_PROSODY, renderComposeConfigs } from "../../deploy/compose/render.js";
import { checkHaproxyConfig } from "../../local-stack/haproxy.js";
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
