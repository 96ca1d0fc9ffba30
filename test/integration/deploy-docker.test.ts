// The gateway's image, each file checked by the tool that will consume it, or the closest one that runs
// here without a Docker engine:
//
//   deploy/Dockerfile, deploy/compose/prosody.Dockerfile   dockerfile-utils lint; structure; the runtime
//                                                          stage rebuilt in a temp dir and run
//   .dockerignore                                          every COPY source in the build context, the
//                                                          heavy directories out of it
import assert from "node:assert/strict";
import { cpSync, existsSync } from "node:fs";
import path from "node:path";
import { after, it } from "node:test";
import type { Instruction } from "dockerfile-ast";
import { validate as lintDockerfile } from "dockerfile-utils";
import ts from "typescript";
import type { Env } from "../../lib/env.js";
import { freePort, onFreePorts, pollUntil, PortTaken } from "../../local-stack/ports.js";
import { spawnChild } from "../../local-stack/process.js";
import { makeTempDir, removeDir } from "../../local-stack/tempdir.js";
import { pkg, read, root, run } from "../helpers/deploy-kit.js";
import { args, execForm, ofKind, stages, type Stage } from "../helpers/dockerfile.js";
import { startGatewayWithStack } from "../helpers/gateway-process.js";
import { Teardown } from "../helpers/stack.js";

const teardown = new Teardown();
after(() => teardown.run());

/** `COPY [--flags] SRC... DEST` (shell form) as flags, sources and destination. */
function copyParts(i: Instruction): { flags: string[]; sources: string[]; dest: string } {
  const words = args(i).split(/\s+/);
  const flags = words.filter((w) => w.startsWith("--"));
  const rest = words.filter((w) => !w.startsWith("--"));
  assert.ok(rest.length >= 2, `COPY without source or destination: ${args(i)}`);
  return { flags, sources: rest.slice(0, -1), dest: rest.at(-1) as string };
}

/** .dockerignore semantics: the last pattern that matches the path or one of its parent directories wins. */
function dockerIgnored(rel: string, patterns: readonly string[]): boolean {
  const toRegex = (p: string) =>
    new RegExp(
      `^${p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*\*\/?|\*|\?/g, (t) => (t.startsWith("**") ? ".*" : t === "*" ? "[^/]*" : "[^/]"))}$`,
    );
  const prefixes = rel.split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const re = toRegex(path.posix.normalize(negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, ""));
    if (prefixes.some((p) => re.test(p))) ignored = !negated;
  }
  return ignored;
}

const dockerignore = read(".dockerignore")
  .split("\n")
  .map((l) => l.trim())
  .filter((l) => l !== "" && !l.startsWith("#"));

it("deploy/Dockerfile and deploy/compose/prosody.Dockerfile pass dockerfile-utils lint without a warning", () => {
  for (const file of ["deploy/Dockerfile", "deploy/compose/prosody.Dockerfile"]) {
    const problems = lintDockerfile(read(file));
    assert.deepEqual(
      problems.map((p) => `${file}:${p.range.start.line + 1}: ${typeof p.message === "string" ? p.message : p.message.value}`),
      [],
    );
  }
  // The linter does look: a duration without a unit and a lower-case instruction are both reported.
  const broken = lintDockerfile("FROM node:20-bookworm-slim\nHEALTHCHECK --interval=10 CMD true\ncopy a b\n");
  assert.equal(broken.length, 2, JSON.stringify(broken.map((p) => p.message)));
});

it("deploy/Dockerfile builds in one stage and runs, as a non-root user with a /healthz check, in another", () => {
  const all = stages(read("deploy/Dockerfile"));
  assert.ok(all.length >= 2, "multi-stage");
  const build = all.find((s) => ofKind(s, "RUN").some((r) => /\bnpm run build\b/.test(args(r))));
  assert.ok(build?.name, "a named stage runs npm run build");
  assert.ok(
    ofKind(build, "RUN").some((r) => /\bnpm ci\b/.test(args(r)) && !/--omit=dev/.test(args(r))),
    "the build stage installs dev dependencies (the compiler)",
  );
  const final = all.at(-1) as Stage;
  assert.notEqual(final, build, "the build stage is not the image");

  assert.ok(
    ofKind(final, "RUN").some((r) => /\bnpm ci\b.*--omit=dev/.test(args(r))),
    "the runtime stage installs production dependencies only",
  );
  const copies = ofKind(final, "COPY").map(copyParts);
  const fromBuild = copies.filter((c) => c.flags.includes(`--from=${build.name}`));
  assert.ok(
    fromBuild.some((c) => c.sources.some((s) => s.endsWith("/dist") || s.endsWith("/dist/"))),
    "dist/ comes from the build stage",
  );
  for (const c of copies) {
    for (const flag of c.flags.filter((f) => f.startsWith("--from="))) {
      assert.ok(
        all.some((s) => s.name === flag.slice("--from=".length)),
        `${flag} names a stage`,
      );
    }
  }

  const users = ofKind(final, "USER").map(args);
  assert.ok(users.length > 0, "the runtime stage sets USER");
  const user = (users.at(-1) as string).split(":")[0];
  assert.ok(user !== "root" && user !== "0" && user !== "", `runs as ${user}, not root`);

  const healthchecks = ofKind(final, "HEALTHCHECK");
  assert.equal(healthchecks.length, 1);
  const check = execForm(args(healthchecks[0] as Instruction));
  assert.equal(check[0], "node", "the health check needs nothing but node");
  assert.match(check.join(" "), /\/healthz/);

  const cmds = ofKind(final, "CMD");
  assert.equal(cmds.length, 1);
  assert.deepEqual(
    execForm(args(cmds[0] as Instruction)).filter((a) => !a.startsWith("--")),
    ["node", "dist/gateway/main.js"],
  );
  assert.equal(ofKind(final, "ENTRYPOINT").length, 0, "no ENTRYPOINT: the agent runs as `node dist/adapters/device-agent/main.js`");
});

it("every file the image is built from is in the build context and copied by the build stage", () => {
  const all = stages(read("deploy/Dockerfile"));
  const sources: string[] = [];
  for (const stage of all) {
    for (const c of ofKind(stage, "COPY").map(copyParts)) {
      if (c.flags.some((f) => f.startsWith("--from="))) continue;
      for (const s of c.sources) {
        const rel = s.replace(/\/+$/, "");
        assert.ok(existsSync(path.join(root, rel)), `COPY source ${s} exists`);
        assert.ok(!dockerIgnored(rel, dockerignore), `COPY source ${s} is not excluded by .dockerignore`);
        sources.push(rel);
      }
    }
  }
  // What `npm run build` compiles: the program of tsconfig.build.json, every import followed.
  const config = ts.getParsedCommandLineOfConfigFile(
    path.join(root, "tsconfig.build.json"),
    {},
    { ...ts.sys, onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, "\n")) },
  );
  assert.ok(config);
  const program = ts.createProgram({ rootNames: config.fileNames, options: config.options });
  const compiled = program
    .getSourceFiles()
    .map((f) => path.relative(root, f.fileName).split(path.sep).join("/"))
    .filter((f) => !f.startsWith("node_modules/") && !f.startsWith(".."));
  assert.ok(compiled.includes("adapters/simulated-device/main.ts"));
  for (const file of [...compiled, "tsconfig.json", "tsconfig.build.json", "package.json", "package-lock.json"]) {
    assert.ok(
      sources.some((s) => file === s || file.startsWith(`${s}/`)),
      `${file} is compiled but no COPY brings it into the build`,
    );
    assert.ok(!dockerIgnored(file, dockerignore), `${file} is excluded by .dockerignore`);
  }
  for (const heavy of ["node_modules/x", "dist/gateway/main.js", ".git/HEAD", "bench/results/r.json", "test/unit/a.test.ts"]) {
    assert.ok(dockerIgnored(heavy, dockerignore), `${heavy} stays out of the build context`);
  }
});

it("the checkers are development dependencies only: nothing of them reaches the image", () => {
  for (const name of [
    "kubernetes-models",
    "@kubernetes-models/prometheus-operator",
    "@grafana/schema",
    "dockerfile-utils",
    "dockerfile-ast",
  ]) {
    assert.ok(pkg.devDependencies[name], `${name} is a devDependency`);
    assert.equal(pkg.dependencies[name], undefined);
  }
});

// The runtime stage, rebuilt here: the Dockerfile's production install in a directory of its own, the
// build stage's dist/ beside it. Shared by the tests below that run the image's commands.
interface RuntimeDir {
  dir: string;
  node(args: readonly string[], env: Env): { status: number | null; out: string };
}
let runtimeDir: Promise<RuntimeDir> | undefined;
function runtime(): Promise<RuntimeDir> {
  runtimeDir ??= (async () => {
    const dir = await makeTempDir("image-runtime-");
    teardown.add("runtime dir", () => removeDir(dir));
    for (const f of ["package.json", "package-lock.json"]) cpSync(path.join(root, f), path.join(dir, f));
    const final = stages(read("deploy/Dockerfile")).at(-1) as Stage;
    const install = ofKind(final, "RUN")
      .map(args)
      .find((r) => /\bnpm ci\b/.test(r)) as string;
    const npmArgs = (/npm (ci[^&;|]*)/.exec(install)?.[1] ?? "").trim().split(/\s+/);
    // From the local npm cache when it has the packages (CI's `npm ci` filled it), else the registry.
    const npm = run("npm", [...npmArgs, "--prefer-offline"], { cwd: dir, timeoutMs: 120_000 });
    assert.equal(npm.status, 0, npm.out);
    assert.ok(!existsSync(path.join(dir, "node_modules", "typescript")), "no dev dependency in the runtime install");
    const tsc = run(process.execPath, [
      path.join(root, "node_modules/typescript/bin/tsc"),
      "-p",
      "tsconfig.build.json",
      "--outDir",
      path.join(dir, "dist"),
    ]);
    assert.equal(tsc.status, 0, tsc.out);
    return {
      dir,
      node: (nodeArgs, env) => run(process.execPath, nodeArgs, { cwd: dir, env: { PATH: process.env.PATH, ...env }, timeoutMs: 20_000 }),
    };
  })();
  return runtimeDir;
}

it("the runtime stage's production install loads the gateway, the agent and the simulated devices", async () => {
  const image = await runtime();
  // Every module loads with production dependencies only; each entry point then stops on its config.
  const gateway = image.node(["dist/gateway/main.js"], {});
  assert.equal(gateway.status, 2, gateway.out);
  assert.match(gateway.out, /^config: XMPP_COMPONENT_SECRET \(or XMPP_COMPONENT_SECRET_FILE\) is required$/m);
  const agent = image.node(["dist/adapters/device-agent/main.js"], {});
  assert.equal(agent.status, 2, agent.out);
  assert.match(agent.out, /^config: AGENT_USERNAME is required$/m);
  const devices = image.node(["dist/adapters/simulated-device/main.js"], { SIMULATED_DEVICES: "a=1,b=99999" });
  assert.equal(devices.status, 2, devices.out);
  assert.match(devices.out, /"b=99999" must be id=port/);

  // SIMULATED_DEVICES takes ports from 1 up (each device has the address it had before): a probed port, probed again if taken.
  let port = 0;
  const { sim, res } = await onFreePorts(async () => {
    port = await freePort();
    const sim = teardown.stopLater(
      "simulated devices",
      await spawnChild(process.execPath, ["dist/adapters/simulated-device/main.js"], {
        name: "simulated-device",
        cwd: image.dir,
        env: { SIMULATED_DEVICES: `dev-17=${port}`, SIMULATED_DEVICE_HOST: "127.0.0.1" },
      }),
    );
    const early = new AbortController();
    void sim.exited.then(() => early.abort());
    try {
      return {
        sim,
        res: await pollUntil("simulated device", () => fetch(`http://127.0.0.1:${port}/TEMPERATURE`), {
          timeoutMs: 10_000,
          signal: early.signal,
        }),
      };
    } catch (err) {
      if (/EADDRINUSE/.test(sim.output())) throw new PortTaken(sim.output());
      throw err;
    }
  });
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { device: string }).device, "dev-17");
  await sim.stop();
  assert.equal((await sim.exited).code, 0);
});

it("the image's HEALTHCHECK command passes against a running gateway and fails once it has stopped", async () => {
  const image = await runtime();
  const final = stages(read("deploy/Dockerfile")).at(-1) as Stage;
  const [cmd, ...rest] = execForm(args(ofKind(final, "HEALTHCHECK")[0] as Instruction));
  assert.equal(cmd, "node");
  // A gateway from the rebuilt runtime stage against a real Redis and Prosody.
  const gw = await startGatewayWithStack(teardown, { name: "gateway-from-the-image", cwd: image.dir, nodeArgs: ["dist/gateway/main.js"] });
  const ok = image.node(rest, { GATEWAY_PORT: String(gw.port) });
  assert.equal(ok.status, 0, ok.out);
  // package.json sits beside dist/ as in the image, so the build reports its version.
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  assert.match(metrics, new RegExp(`^gateway_build_info\\{version="${pkg.version.replaceAll(".", "\\.")}"`, "m"));
  const closed = await freePort(); // a port nothing listens on: no server here to bind port 0
  const down = image.node(rest, { GATEWAY_PORT: String(closed) });
  assert.equal(down.status, 1, down.out);
});
