// `npm run demo` as a user runs it (bash demo/run.sh, on a free GATEWAY_PORT): it reaches "Ready", and the
// commands it prints do what their comments say. They are run as printed, turned from curl into fetch: a
// device still on HTTP answered through the pass-through, its live cut-over, the same request then answered
// over XMPP (the gateway's requests-by-transport counter and the migration view tell which path), the
// rollback. Then SIGTERM, and nothing the demo started is left running.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { freePort, pollUntil } from "../../local-stack/ports.js";
import { isAlive, spawnChild, type ChildHandle } from "../../local-stack/process.js";
import { metricValue } from "../helpers/metrics.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const READY_TIMEOUT_MS = 120_000;

/** A printed curl command, as the fetch that does the same. */
interface Curl {
  line: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  /** `-x`: the gateway as the client's forward proxy, the URL in absolute form. */
  proxy?: string;
}

/** Shell words of one line, up to a pipe: single and double quotes as the shell reads these commands. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (c === " " && word === undefined) continue;
    if (c === " ") {
      words.push(word as string);
      word = undefined;
    } else if (c === "|" && word === undefined) {
      break;
    } else if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      assert.ok(end > i, `unbalanced ${c} in: ${line}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (word !== undefined) words.push(word);
  return words;
}

function parseCurl(line: string): Curl {
  const words = shellWords(line.trim());
  assert.equal(words.shift(), "curl", line);
  const curl: Curl = { line, method: "GET", url: "", headers: {} };
  const next = (flag: string): string => {
    const value = words.shift();
    assert.ok(value !== undefined, `${flag} without a value in: ${line}`);
    return value;
  };
  while (words.length > 0) {
    const word = words.shift() as string;
    if (word === "-i" || word === "-s") continue;
    if (word === "-X") curl.method = next(word);
    else if (word === "-d") curl.body = next(word);
    else if (word === "-x") curl.proxy = next(word);
    else if (word === "-H") {
      const header = next(word);
      const colon = header.indexOf(":");
      curl.headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
    } else if (word.startsWith("-")) assert.fail(`the test does not know curl's ${word}: ${line}`);
    else curl.url = word;
  }
  assert.ok(curl.url !== "", `no URL in: ${line}`);
  return curl;
}

interface Answer {
  status: number;
  text: string;
}

async function run(curl: Curl): Promise<Answer> {
  if (curl.proxy === undefined) {
    const res = await fetch(curl.url, {
      method: curl.method,
      headers: curl.headers,
      ...(curl.body !== undefined ? { body: curl.body } : {}),
    });
    return { status: res.status, text: await res.text() };
  }
  // What curl -x sends: the request to the proxy, with the device's URL as an absolute-form target.
  const proxy = new URL(curl.proxy);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: proxy.hostname, port: proxy.port, method: curl.method, path: curl.url, headers: curl.headers },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (t: string) => (text += t));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(curl.body);
  });
}

/** Every process under `root`, from ps: pid and command line. */
function descendants(root: number): Array<{ pid: number; args: string }> {
  const ps = spawnSync("ps", ["-e", "-o", "pid=,ppid=,args="], { encoding: "utf8" });
  assert.equal(ps.status, 0, ps.stderr);
  const rows = ps.stdout
    .split("\n")
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] as string }));
  const found: Array<{ pid: number; args: string }> = [];
  const parents = [root];
  while (parents.length > 0) {
    const parent = parents.pop() as number;
    for (const row of rows.filter((r) => r.ppid === parent)) {
      found.push({ pid: row.pid, args: row.args });
      parents.push(row.pid);
    }
  }
  return found;
}

describe("npm run demo", () => {
  let demo: ChildHandle;
  let printed = "";
  let commands: Curl[];
  let base: string;
  let auth: Record<string, string>;

  before(async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { GATEWAY_PORT: String(port), LOG_LEVEL: "warn" };
    demo = await spawnChild("bash", ["demo/run.sh"], { name: "demo", cwd: ROOT, env });
    // The whole walkthrough is printed once everything answers; its last line is the cue.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no "Press Ctrl-C" within ${READY_TIMEOUT_MS} ms:\n${demo.output()}`)),
        READY_TIMEOUT_MS,
      );
      demo.child.stdout?.on("data", (text: string) => {
        printed += text;
        if (printed.includes("Press Ctrl-C to stop everything.")) {
          clearTimeout(timer);
          resolve();
        }
      });
      void demo.exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`the demo exited (code ${code}, signal ${signal}) before it was ready:\n${demo.output()}`));
      });
    });
    commands = printed
      .split("\n")
      .filter((l) => l.startsWith("  curl "))
      .map(parseCurl);
    const cutOver = commands.find((c) => c.method === "PATCH" && c.body === '{"transport":"xmpp"}');
    assert.ok(cutOver, `no cut-over PATCH among:\n${printed}`);
    base = new URL(cutOver.url).origin;
    auth = { Authorization: cutOver.headers.Authorization as string };
  });
  // SIGTERM first: the demo then stops its own children (SIGKILL would orphan them).
  after(() => demo?.stop());

  const deviceOf = (c: Curl): string | undefined => /^\/devices\/([^/]+)\//.exec(new URL(c.url).pathname)?.[1];
  const requestsBy = async (transport: string): Promise<number> =>
    metricValue(await (await fetch(`${base}/metrics`)).text(), "gateway_http_requests_total", { transport });
  const migration = async (): Promise<{ devices: { byTransport: Record<string, number> } }> => {
    const res = await fetch(`${base}/admin/migration`, { headers: auth });
    assert.equal(res.status, 200);
    return (await res.json()) as { devices: { byTransport: Record<string, number> } };
  };
  /** Runs `c` and answers how many requests each transport's counter gained meanwhile. */
  const counted = async (c: Curl): Promise<{ answer: Answer; http: number; xmpp: number }> => {
    const [http0, xmpp0] = [await requestsBy("http"), await requestsBy("xmpp")];
    const answer = await run(c);
    return { answer, http: (await requestsBy("http")) - http0, xmpp: (await requestsBy("xmpp")) - xmpp0 };
  };

  it("says it is ready, and how long it took", () => {
    assert.match(printed, /^Ready in \d+\.\d s.* \(Prosody, Redis, the gateway, /m);
  });

  it("prints a request to a device on each transport, the cut-over and its rollback, the migration view and the metrics", async () => {
    const transports = new Set<string>();
    for (const c of commands) {
      const id = deviceOf(c);
      if (id === undefined) continue;
      const res = await fetch(`${base}/admin/devices/${id}`, { headers: auth });
      assert.equal(res.status, 200, c.line);
      transports.add(((await res.json()) as { transport: string }).transport);
    }
    assert.deepEqual([...transports].sort(), ["http", "shadow", "xmpp"]);
    const patches = commands.filter((c) => c.method === "PATCH").map((c) => `${new URL(c.url).pathname} ${c.body}`);
    assert.equal(patches.length, 2);
    assert.equal(patches[0]?.replace("xmpp", "http"), patches[1], "the rollback names the device of the cut-over");
    assert.ok(commands.some((c) => new URL(c.url).pathname === "/admin/migration"));
    assert.ok(printed.split("\n").some((l) => /^ {2}curl .*\/metrics \| grep .*gateway_/.test(l)));
  });

  it("runs the walkthrough: HTTP, cut-over, the same request over XMPP, rollback", async () => {
    const patchAt = commands.findIndex((c) => c.method === "PATCH" && c.body === '{"transport":"xmpp"}');
    const rollbackAt = commands.findIndex((c) => c.method === "PATCH" && c.body === '{"transport":"http"}');
    const device = new URL((commands[patchAt] as Curl).url).pathname.split("/").pop() as string;
    // Its requests: by path, or through the gateway as a forward proxy (by its legacy address).
    const toDevice = (c: Curl) => deviceOf(c) === device || c.proxy !== undefined;
    const onHttp = commands.slice(0, patchAt).filter(toDevice);
    const onXmpp = commands.slice(patchAt + 1, rollbackAt).filter(toDevice);
    assert.ok(onHttp.length > 0 && onXmpp.length > 0, `no request to ${device} on both sides of its cut-over`);

    for (const c of onHttp) {
      const { answer, http, xmpp } = await counted(c);
      assert.equal(answer.status, 200, c.line);
      assert.equal((JSON.parse(answer.text) as { device: string }).device, device);
      assert.deepEqual({ http, xmpp }, { http: 1, xmpp: 0 }, `before the cut-over, through the pass-through: ${c.line}`);
    }

    const was = (await migration()).devices.byTransport;
    const patched = await run(commands[patchAt] as Curl);
    assert.equal(patched.status, 200, patched.text);
    assert.equal((JSON.parse(patched.text) as { transport: string }).transport, "xmpp");
    const now = (await migration()).devices.byTransport;
    assert.deepEqual(now, { ...was, http: (was.http ?? 0) - 1, xmpp: (was.xmpp ?? 0) + 1 });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.equal(metricValue(metrics, "gateway_devices", { transport: "xmpp" }), now.xmpp);

    for (const c of onXmpp) {
      const { answer, http, xmpp } = await counted(c);
      assert.equal(answer.status, 200, c.line);
      assert.equal((JSON.parse(answer.text) as { device: string }).device, device);
      assert.deepEqual({ http, xmpp }, { http: 0, xmpp: 1 }, `after the cut-over, over XMPP: ${c.line}`);
    }

    const rolledBack = await run(commands[rollbackAt] as Curl);
    assert.equal(rolledBack.status, 200, rolledBack.text);
    assert.deepEqual((await migration()).devices.byTransport, was);
    const { answer, http, xmpp } = await counted(onHttp[0] as Curl);
    assert.equal(answer.status, 200);
    assert.deepEqual({ http, xmpp }, { http: 1, xmpp: 0 }, "after the rollback, through the pass-through again");
  });

  it("answers the migration view as printed", async () => {
    const view = commands.find((c) => new URL(c.url).pathname === "/admin/migration") as Curl;
    const answer = await run(view);
    assert.equal(answer.status, 200);
    const body = JSON.parse(answer.text) as { devices: { registered: number; byTransport: Record<string, number> }; online: number };
    assert.ok(body.devices.registered > 0 && body.online > 0, answer.text);
    assert.equal(
      Object.values(body.devices.byTransport).reduce((a, b) => a + b, 0),
      body.devices.registered,
    );
  });

  it("stops everything it started on SIGTERM", async () => {
    const children = descendants(demo.pid);
    for (const what of ["redis-server", "prosody", "gateway/main.ts", "device-agent/main.ts"]) {
      assert.ok(
        children.some((c) => c.args.includes(what)),
        `no ${what} among the demo's processes:\n${children.map((c) => c.args).join("\n")}`,
      );
    }
    // stop() keeps the test alive while it waits (the child is unref'd); SIGKILL only past its bound.
    await demo.stop("SIGTERM", 30_000);
    const exit = await demo.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    // Reaped by now (their parent is gone): polled, as init reaps them on its own time.
    await pollUntil("the demo's processes to be gone", () => children.every((c) => !isAlive(c.pid)), { timeoutMs: 10_000 });
  });
});
