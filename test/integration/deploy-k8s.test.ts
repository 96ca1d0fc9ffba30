// The Kubernetes manifests, each checked by the tool that will consume it, or the closest one that runs
// here without a cluster:
//
//   deploy/k8s                                             kubectl kustomize; kubernetes-models schemas;
//                                                          the models' types for unknown fields
//   deploy/k8s-sentinel (overlay: Redis Sentinel)          the same, on kustomize v4 or later
//
// and the values the manifests share (ports, names, secrets, drain times) checked against each other, the
// image's Dockerfile and the gateway's own configuration loader.
import assert from "node:assert/strict";
import path from "node:path";
import { it } from "node:test";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Secret } from "kubernetes-models/v1/Secret";
import { Service } from "kubernetes-models/v1/Service";
import { ConfigError } from "../../lib/env.js";
import { loadConfig } from "../../gateway/config.js";
import { deploy, list, obj, pkg, read, run, str, type Json } from "../helpers/deploy-kit.js";
import { args, ofKind, stages, type Stage } from "../helpers/dockerfile.js";
import { typecheck } from "../helpers/typecheck.js";

interface Manifest extends Json {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
}

/** The models that validate each kind against its OpenAPI schema, and the types that know its fields. */
const MODELS: Record<string, { validate(doc: Json): void; type: string; from: string }> = {
  "v1/ConfigMap": { validate: (d) => new ConfigMap(d).validate(), type: "IConfigMap", from: "kubernetes-models/v1/ConfigMap" },
  "v1/Secret": { validate: (d) => new Secret(d).validate(), type: "ISecret", from: "kubernetes-models/v1/Secret" },
  "v1/Service": { validate: (d) => new Service(d).validate(), type: "IService", from: "kubernetes-models/v1/Service" },
  "apps/v1/Deployment": {
    validate: (d) => new Deployment(d).validate(),
    type: "IDeployment",
    from: "kubernetes-models/apps/v1/Deployment",
  },
  "policy/v1/PodDisruptionBudget": {
    validate: (d) => new PodDisruptionBudget(d).validate(),
    type: "IPodDisruptionBudget",
    from: "kubernetes-models/policy/v1/PodDisruptionBudget",
  },
  "autoscaling/v2/HorizontalPodAutoscaler": {
    validate: (d) => new HorizontalPodAutoscaler(d).validate(),
    type: "IHorizontalPodAutoscaler",
    from: "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler",
  },
  "monitoring.coreos.com/v1/ServiceMonitor": {
    validate: (d) => new ServiceMonitor(d as unknown as ConstructorParameters<typeof ServiceMonitor>[0]).validate(),
    type: "IServiceMonitor",
    from: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
  },
};
const modelOf = (m: Manifest) => MODELS[`${m.apiVersion}/${m.kind}`];

function yamlDocs(text: string, what: string): Manifest[] {
  return parseAllDocuments(text)
    .map((d, i) => {
      assert.deepEqual(d.errors, [], `${what} document ${i}`);
      return d.toJS() as Manifest;
    })
    .filter((d) => d !== null);
}

/** Unknown fields, which the schemas let through, are type errors for the models' types. */
function unknownFields(docs: readonly Manifest[]): string[] {
  const imports = [...new Set(docs.map((d) => modelOf(d)))].map((m) => `import type { ${m?.type} } from "${m?.from}";`);
  const decls = docs.map((d, i) => `export const doc${i}: ${modelOf(d)?.type} = ${JSON.stringify(d)};`);
  return typecheck([...imports, ...decls].join("\n"));
}

const kustomizeOutput = new Map<string, Manifest[]>();
/** `kubectl kustomize deploy/DIR`, parsed. */
function kustomized(dir = "k8s"): Manifest[] {
  const cached = kustomizeOutput.get(dir);
  if (cached) return cached;
  const r = run("kubectl", ["kustomize", path.join(deploy, dir)]);
  assert.equal(r.status, 0, `kubectl kustomize deploy/${dir}:\n${r.out}`);
  const docs = yamlDocs(r.out.replace(/^# Warning:.*$/gm, ""), "kustomize output");
  kustomizeOutput.set(dir, docs);
  return docs;
}

it("kubectl kustomize renders deploy/k8s: every file of the kustomization, nothing else", () => {
  const kustomization = obj(parseYaml(read("deploy/k8s/kustomization.yaml")), "kustomization");
  const files = list(kustomization.resources, "resources").map((f) => str(f, "resource"));
  const direct = files.flatMap((f) => yamlDocs(read(`deploy/k8s/${f}`), f));
  const key = (m: Manifest) => `${m.kind}/${m.metadata.name}`;
  assert.deepEqual(kustomized().map(key).sort(), direct.map(key).sort());
  const r = run("kubectl", ["kustomize", path.join(deploy, "k8s")]);
  assert.doesNotMatch(r.out, /Warning/, "no deprecated kustomize field");
  const kinds = new Set(kustomized().map((m) => m.kind));
  for (const kind of ["Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ServiceMonitor"])
    assert.ok(kinds.has(kind), kind);
});

it("every manifest passes its Kubernetes schema (kubernetes-models), unknown fields included", () => {
  const docs = kustomized();
  for (const d of docs) {
    const model = modelOf(d);
    assert.ok(model, `no schema for ${d.apiVersion} ${d.kind}`);
    assert.doesNotThrow(() => model.validate(d), `${d.kind}/${d.metadata.name}`);
  }
  assert.deepEqual(unknownFields(docs), []);
});

it("the schema checks refuse a wrong type and a misspelt field", () => {
  const deployment = kustomized().find((d) => d.kind === "Deployment") as Manifest;
  const wrongType = structuredClone(deployment);
  obj(wrongType.spec, "spec").replicas = "two";
  assert.throws(() => modelOf(wrongType)?.validate(wrongType), /replicas must be integer/);
  const misspelt = structuredClone(deployment);
  const podSpec = obj(obj(obj(misspelt.spec, "spec").template, "template").spec, "pod spec");
  podSpec.terminationGracePeriod = podSpec.terminationGracePeriodSeconds;
  delete podSpec.terminationGracePeriodSeconds;
  assert.ok(
    unknownFields([misspelt]).some((e) => /"terminationGracePeriod"/.test(e)),
    "a misspelt field is reported",
  );
});

it("the Kubernetes manifests agree with each other and with the gateway's configuration", () => {
  const docs = kustomized();
  const one = (kind: string) => {
    const found = docs.filter((d) => d.kind === kind);
    assert.equal(found.length, 1, kind);
    return found[0] as Manifest;
  };
  const deployment = one("Deployment");
  const spec = obj(deployment.spec, "spec");
  const template = obj(spec.template, "template");
  const podLabels = obj(obj(template.metadata, "metadata").labels, "labels") as Record<string, string>;
  const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
    Object.entries(selector).every(([k, v]) => labels[k] === v);
  assert.ok(
    matches(obj(obj(spec.selector, "selector").matchLabels, "matchLabels") as Record<string, string>, podLabels),
    "Deployment selector",
  );
  const pod = obj(template.spec, "pod spec");
  const containers = list(pod.containers, "containers").map((c) => obj(c, "container"));
  assert.equal(containers.length, 1);
  const container = containers[0] as Json;

  // The environment the gateway starts with: ConfigMap, Secret and the pod's own variables.
  const configMap = one("ConfigMap");
  const secret = one("Secret");
  const envFrom = list(container.envFrom, "envFrom").map((e) => obj(e, "envFrom"));
  assert.deepEqual(
    envFrom.map((e) => [Object.keys(e)[0], obj(Object.values(e)[0], "ref").name]),
    [
      ["configMapRef", configMap.metadata.name],
      ["secretRef", secret.metadata.name],
    ],
  );
  const env: Record<string, string> = { ...(configMap.data as Record<string, string>), ...(secret.stringData as Record<string, string>) };
  for (const e of list(container.env ?? [], "env").map((x) => obj(x, "env")))
    env[str(e.name, "env name")] = typeof e.value === "string" ? e.value : "pod-name";
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    assert.fail(err instanceof ConfigError ? err.problems.join("\n") : String(err));
  }

  const ports = new Map(
    list(container.ports, "ports")
      .map((p) => obj(p, "port"))
      .map((p) => [str(p.name, "port name"), p.containerPort as number]),
  );
  assert.equal(ports.get("http"), config.http.port, "container port http is GATEWAY_PORT");
  assert.equal(ports.get("metrics"), config.http.metricsPort, "container port metrics is GATEWAY_METRICS_PORT");
  const probe = (name: string) => obj(obj(container[name], name).httpGet, `${name}.httpGet`);
  assert.deepEqual([probe("readinessProbe").path, probe("readinessProbe").port], ["/readyz", "http"]);
  assert.deepEqual([probe("livenessProbe").path, probe("livenessProbe").port], ["/healthz", "http"]);

  // Deletion: preStop pause, then SIGTERM and the drain; the kubelet's SIGKILL comes after all of it, and
  // the drain lets a request run to its deadline.
  const preStop = list(obj(obj(obj(container.lifecycle, "lifecycle").preStop, "preStop").exec, "exec").command, "command");
  assert.equal(preStop[0], "sleep");
  const pauseMs = Number(preStop[1]) * 1000;
  const graceS = pod.terminationGracePeriodSeconds as number;
  assert.ok(
    graceS * 1000 > pauseMs + config.drainGraceMs + config.drainTimeoutMs,
    `terminationGracePeriodSeconds ${graceS} covers ${pauseMs} + ${config.drainGraceMs} + ${config.drainTimeoutMs} ms`,
  );
  assert.ok(config.drainTimeoutMs >= config.exchange.timeoutMs, "GATEWAY_DRAIN_TIMEOUT_MS is at least GATEWAY_REQUEST_TIMEOUT_MS");
  const rolling = obj(obj(spec.strategy, "strategy").rollingUpdate, "rollingUpdate");
  assert.equal(rolling.maxUnavailable, 0, "a rollout adds before it removes");

  // The image the Dockerfile builds, at this version; running as the Dockerfile's user.
  assert.equal(container.image, `xmpp-http-gateway:${pkg.version}`);
  const final = stages(read("deploy/Dockerfile")).at(-1) as Stage;
  const user = (ofKind(final, "USER").map(args).at(-1) ?? "").split(":")[0];
  assert.equal(String(obj(pod.securityContext, "securityContext").runAsUser), user);
  assert.equal(obj(pod.securityContext, "securityContext").runAsNonRoot, true);

  const service = one("Service");
  const serviceSpec = obj(service.spec, "service spec");
  assert.ok(matches(obj(serviceSpec.selector, "selector") as Record<string, string>, podLabels), "Service selects the pods");
  const servicePorts = list(serviceSpec.ports, "ports").map((p) => obj(p, "service port"));
  for (const p of servicePorts)
    assert.ok(ports.has(str(p.targetPort, "targetPort")), `Service targetPort ${String(p.targetPort)} is a container port`);

  const monitor = one("ServiceMonitor");
  const monitorSpec = obj(monitor.spec, "ServiceMonitor spec");
  assert.ok(
    matches(obj(obj(monitorSpec.selector, "selector").matchLabels, "matchLabels") as Record<string, string>, service.metadata.labels ?? {}),
    "ServiceMonitor selects the Service",
  );
  const endpoint = obj(list(monitorSpec.endpoints, "endpoints")[0], "endpoint");
  const scraped = servicePorts.find((p) => p.name === endpoint.port);
  assert.ok(scraped, "the ServiceMonitor scrapes a named Service port");
  assert.equal(scraped.targetPort, "metrics");
  assert.equal(endpoint.path, "/metrics");
  // The job label comes from a Service label: "gateway", the job the alerts and the dashboard select.
  assert.equal((service.metadata.labels ?? {})[str(monitorSpec.jobLabel, "jobLabel")], "gateway");

  const pdb = one("PodDisruptionBudget");
  assert.ok(
    matches(obj(obj(obj(pdb.spec, "pdb spec").selector, "selector").matchLabels, "matchLabels") as Record<string, string>, podLabels),
    "PDB selects the pods",
  );
  const hpa = one("HorizontalPodAutoscaler");
  const target = obj(obj(hpa.spec, "hpa spec").scaleTargetRef, "scaleTargetRef");
  assert.deepEqual([target.apiVersion, target.kind, target.name], [deployment.apiVersion, deployment.kind, deployment.metadata.name]);
  const resources = obj(obj(container.resources, "resources").requests, "requests");
  assert.ok(resources.cpu, "CPU utilisation needs a CPU request");
});

// The Sentinel overlay, deploy/k8s-sentinel: the base with its ConfigMap in Sentinel mode.

/**
 * The overlay names its base as a directory in `resources` and patches with `patches`, which kustomize
 * reads from v4 on (kubectl 1.21); kubectl 1.20 (Debian bookworm's) embeds kustomize v2, which has neither.
 */
const kustomizeMajor = Number(/Kustomize Version: v(\d+)/.exec(run("kubectl", ["version", "--client"]).out)?.[1] ?? 0);
const overlaySkip = kustomizeMajor >= 4 ? false : "kubectl's kustomize is older than v4 (kubectl 1.21): it cannot render the overlay";

it(
  "kubectl kustomize renders deploy/k8s-sentinel: the base, its ConfigMap in Sentinel mode and nothing else changed",
  { skip: overlaySkip },
  () => {
    const r = run("kubectl", ["kustomize", path.join(deploy, "k8s-sentinel")]);
    assert.doesNotMatch(r.out, /Warning/, "no deprecated kustomize field");
    const base = kustomized();
    const overlay = kustomized("k8s-sentinel");
    const key = (m: Manifest) => `${m.kind}/${m.metadata.name}`;
    assert.deepEqual(overlay.map(key), base.map(key));
    for (const [i, m] of overlay.entries()) if (m.kind !== "ConfigMap") assert.deepEqual(m, base[i], `${key(m)} is the base's`);

    const baseData = { ...((base.find((m) => m.kind === "ConfigMap")?.data ?? {}) as Record<string, string>) };
    const cm = overlay.find((m) => m.kind === "ConfigMap") as Manifest;
    const data = cm.data as Record<string, string>;
    assert.ok(baseData.REDIS_URL, "the base has a REDIS_URL for the overlay to remove");
    assert.equal(data.REDIS_URL, undefined, "no REDIS_URL: with REDIS_SENTINELS the gateway would refuse to start");
    delete baseData.REDIS_URL;
    const { REDIS_SENTINELS, REDIS_SENTINEL_NAME, ...rest } = data;
    assert.ok(REDIS_SENTINELS && REDIS_SENTINEL_NAME);
    assert.deepEqual(rest, baseData, "every other setting is the base's");
  },
);

it("deploy/k8s-sentinel passes the Kubernetes schemas, and the gateway loads its settings in Sentinel mode", { skip: overlaySkip }, () => {
  const docs = kustomized("k8s-sentinel");
  for (const d of docs) assert.doesNotThrow(() => modelOf(d)?.validate(d), `${d.kind}/${d.metadata.name}`);
  const cm = docs.find((m) => m.kind === "ConfigMap") as Manifest;
  assert.deepEqual(unknownFields([cm]), []);

  const secret = docs.find((m) => m.kind === "Secret") as Manifest;
  const env: Record<string, string> = {
    ...(cm.data as Record<string, string>),
    ...(secret.stringData as Record<string, string>),
    GATEWAY_INSTANCE_ID: "pod-name",
  };
  let config;
  try {
    config = loadConfig(env);
  } catch (err) {
    assert.fail(err instanceof ConfigError ? err.problems.join("\n") : String(err));
  }
  assert.ok(config.redis.sentinel, "Sentinel mode");
  assert.equal(config.redis.sentinel.sentinels.length, 3, "three Sentinels, as a quorum of two needs");
  for (const s of config.redis.sentinel.sentinels) assert.equal(s.port, 26379, `${s.host}: Sentinel's port`);
  assert.equal(config.redis.sentinel.name, "gateway-primary");
  // Why the overlay removes REDIS_URL rather than leaving the base's: both set stops the start.
  const base = kustomized().find((m) => m.kind === "ConfigMap") as Manifest;
  assert.throws(
    () => loadConfig({ ...env, REDIS_URL: (base.data as Record<string, string>).REDIS_URL }),
    (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /REDIS_URL and REDIS_SENTINELS/.test(p)),
  );
});
