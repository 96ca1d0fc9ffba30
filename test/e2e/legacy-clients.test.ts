// Legacy clients that change nothing but their configuration, through a whole gateway (real Redis, real
// Prosody, a real device behind its agent): curl and Node's http client with the gateway as their HTTP proxy
// (forward-proxy addressing by the device's registered legacyAddress), and curl naming the device by Host.
// The device answers the same on either transport. Then what an open proxy would do and the gateway must not:
// unknown addresses, local services that are not devices, user info, https:// and CONNECT tunnels are all
// refused with their catalogue code, and neither the device nor the would-be target is reached.
// 10.0.0.17 and 10.9.9.9 are registry keys only: the gateway never connects to them, and nothing leaves loopback.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, createServer, type AddressInfo, type Server } from "node:net";
import { after, before, describe, it } from "node:test";
import { HttpProxyAgent } from "http-proxy-agent";
import { pollUntil } from "../../local-stack/ports.js";
import { redisCommand } from "../../local-stack/redis.js";
import { startFleet, type Fleet } from "../helpers/fleet.js";
import { startGateway, type RunningGateway } from "../helpers/gateway.js";
import { startStack, Teardown, type Stack } from "../helpers/stack.js";

const ADMIN_TOKEN = "legacy-clients-admin-token-0123";
const DEVICE_ID = "alarm-17";
const LEGACY_ADDRESS = "10.0.0.17:8080";
const HOST_SUFFIX = "devices.test";
/** Proxy settings curl would read from the environment (NO_PROXY could even override `-x`). */
const PROXY_ENV = new Set(["http_proxy", "https_proxy", "all_proxy", "no_proxy"]);

/** One request as the device's own HTTP server saw it. */
interface Hit {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** How it got there: the gateway's HTTP pass-through adds X-Forwarded-For, the agent does not. */
  via: "agent" | "pass-through";
}

/** The legacy device: records every request, answers 200 with what it saw. */
function legacyDevice(id: string, hits: Hit[]) {
  return (req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    req.on("end", () => {
      hits.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        via: req.headers["x-forwarded-for"] === undefined ? "agent" : "pass-through",
      });
      res.setHeader("Content-Type", "application/json");
      res.setHeader("X-Device", id);
      res.end(JSON.stringify({ device: id, method: req.method, url: req.url }));
    });
  };
}

interface Answer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

interface CurlRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** curl as a legacy client runs it: no ~/.curlrc (-q), no proxy settings from the environment, bounded. */
function curl(args: string[]): Promise<CurlRun> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !PROXY_ENV.has(name.toLowerCase())));
  return new Promise((resolve, reject) => {
    execFile("curl", ["-q", "-sS", "-i", "--max-time", "10", ...args], { env, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== "number")
        reject(new Error(`curl did not run: ${err.message}`, { cause: err })); // curl missing, or killed
      else resolve({ exitCode: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/** The one response curl -i printed. */
function curlAnswer(run: CurlRun): Answer {
  assert.equal(run.exitCode, 0, `curl failed: ${run.stderr}`);
  const end = run.stdout.indexOf("\r\n\r\n");
  assert.ok(end >= 0, `no response head in ${JSON.stringify(run.stdout)}`);
  const [statusLine = "", ...lines] = run.stdout.slice(0, end).split("\r\n");
  const status = /^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1];
  assert.ok(status, `not a status line: ${JSON.stringify(statusLine)}`);
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { status: Number(status), headers, body: run.stdout.slice(end + 4) };
}

function toAnswer(res: IncomingMessage, body: string): Answer {
  const headers = new Map<string, string>();
  for (const [name, value] of Object.entries(res.headers)) headers.set(name, Array.isArray(value) ? value.join(", ") : String(value));
  return { status: res.statusCode ?? 0, headers, body };
}

/**
 * A request whose target is written as given (an absolute URI, or an authority for CONNECT), straight to the
 * gateway: what a client configured with the gateway as its proxy sends, for targets curl will not send.
 */
function rawRequest(gatewayPort: number, method: string, target: string, host: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1",
      port: gatewayPort,
      method,
      path: target,
      setHost: false,
      headers: { Host: host },
      agent: false,
    });
    req.on("response", (res) => {
      let body = "";
      res
        .setEncoding("utf8")
        .on("data", (d: string) => (body += d))
        .on("end", () => resolve(toAnswer(res, body)));
    });
    // Node hands the answer to a CONNECT to the `connect` event (whatever its status), with the raw socket.
    req.on("connect", (res, socket, head) => {
      let body = head.toString("utf8");
      socket
        .setEncoding("utf8")
        .on("data", (d: string) => (body += d))
        .on("end", () => resolve(toAnswer(res, body)));
      socket.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** A catalogue error: the status, the code in the JSON body, and the request id on the answer. */
function assertGatewayError(answer: Answer, status: number, code: string): void {
  assert.equal(answer.status, status, answer.body);
  assert.match(answer.headers.get("content-type") ?? "", /^application\/json/);
  assert.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, code);
  assert.ok(answer.headers.get("x-request-id"), "X-Request-Id on the error");
}

/** A TCP server that only counts who connects: the "victim" an open proxy would be made to reach. */
class Victim {
  readonly remotePorts: number[] = [];
  private readonly server: Server = createServer((socket) => {
    this.remotePorts.push(socket.remotePort ?? 0);
    socket.destroy();
  });

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  start(): Promise<void> {
    return new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /**
   * Connects once ourselves and waits until that connection is accepted. Connections are accepted in the
   * order they were made, so any connection the gateway opened while answering an earlier request has been
   * counted by then: no fixed wait needed to be sure there was none.
   */
  async barrier(): Promise<number> {
    const socket = connect({ host: "127.0.0.1", port: this.port });
    socket.on("error", () => undefined); // the server destroys it at once
    const localPort = await new Promise<number>((resolve, reject) => {
      socket.once("connect", () => resolve(socket.localPort ?? 0));
      socket.once("error", reject);
    });
    await pollUntil("our own connection to be accepted", () => this.remotePorts.includes(localPort), { intervalMs: 5 });
    socket.destroy();
    return localPort;
  }
}

/** Redis's count of connections ever accepted (this INFO's own connection included). */
async function redisConnectionsReceived(port: number): Promise<number> {
  const info = await redisCommand(port, ["INFO", "stats"]);
  const count = /^total_connections_received:(\d+)/m.exec(info)?.[1];
  assert.ok(count, `no total_connections_received in ${info}`);
  return Number(count);
}

describe("legacy clients that change nothing but their configuration", () => {
  const teardown = new Teardown();
  let stack: Stack;
  let gw: RunningGateway;
  let fleet: Fleet;
  const hits: Hit[] = [];
  const gatewayPort = () => gw.gateway.http.port;
  const proxy = () => `http://127.0.0.1:${gatewayPort()}`;

  /** Registers the device as a whole entry: its legacy address, its real HTTP server, the transport given. */
  async function register(transport: "xmpp" | "http"): Promise<void> {
    const res = await fetch(`${gw.url}/admin/devices/${DEVICE_ID}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify({ transport, httpTarget: fleet.byId(DEVICE_ID).server.url, legacyAddress: LEGACY_ADDRESS }),
    });
    assert.ok(res.status === 200 || res.status === 201, `PUT ${DEVICE_ID}: ${res.status} ${await res.text()}`);
  }

  /** Runs `send` and checks that it was the device's 200, and that the device saw exactly one request, for `resource`. */
  async function assertReachesDevice(send: () => Promise<Answer>, resource: string, transport: "xmpp" | "http"): Promise<Hit> {
    const before = hits.length;
    const answer = await send();
    assert.equal(answer.status, 200, answer.body);
    assert.equal(answer.headers.get("x-device"), DEVICE_ID);
    assert.deepEqual(JSON.parse(answer.body), { device: DEVICE_ID, method: "GET", url: resource });
    const seen = hits.slice(before);
    assert.equal(seen.length, 1, `the device saw ${seen.length} requests`);
    const [hit] = seen;
    assert.ok(hit);
    assert.equal(hit.url, resource);
    assert.equal(hit.via, transport === "xmpp" ? "agent" : "pass-through");
    assert.equal(hit.headers["proxy-connection"], undefined, "Proxy-* is hop-by-hop: not forwarded");
    assert.equal(hit.headers["proxy-authorization"], undefined);
    return hit;
  }

  /** Runs `refused` and checks that the device saw nothing of it. */
  async function assertDeviceUntouched<T>(refused: () => Promise<T>): Promise<T> {
    const before = hits.length;
    const result = await refused();
    assert.deepEqual(hits.slice(before), [], "the device was reached");
    return result;
  }

  before(async () => {
    stack = teardown.stopLater("stack", await startStack());
    gw = teardown.stopLater(
      "gateway",
      await startGateway(stack, { GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, GATEWAY_DEVICE_HOST_SUFFIX: HOST_SUFFIX }),
    );
    fleet = teardown.stopLater("fleet", await startFleet(stack.prosody, [DEVICE_ID], (id) => legacyDevice(id, hits)));
  });
  after(() => teardown.run());

  for (const transport of ["xmpp", "http"] as const) {
    describe(`with the device on transport ${transport}`, () => {
      before(() => register(transport));

      it("serves curl -x GATEWAY http://10.0.0.17:8080/TEMPERATURE?x=1 (forward proxy)", async () => {
        const hit = await assertReachesDevice(
          async () => curlAnswer(await curl(["-x", proxy(), `http://${LEGACY_ADDRESS}/TEMPERATURE?x=1`])),
          "/TEMPERATURE?x=1",
          transport,
        );
        assert.match(String(hit.headers["user-agent"]), /^curl\//);
      });

      it("serves Node's http client through http-proxy-agent (forward proxy)", async () => {
        const agent = new HttpProxyAgent(proxy());
        try {
          await assertReachesDevice(
            () =>
              new Promise<Answer>((resolve, reject) => {
                const req = request(`http://${LEGACY_ADDRESS}/TEMPERATURE?x=1`, { agent }, (res) => {
                  let body = "";
                  res
                    .setEncoding("utf8")
                    .on("data", (d: string) => (body += d))
                    .on("end", () => resolve(toAnswer(res, body)));
                });
                req.on("error", reject);
                req.end();
              }),
            "/TEMPERATURE?x=1",
            transport,
          );
        } finally {
          agent.destroy();
        }
      });

      it("serves curl with Host: alarm-17.devices.test (Host addressing)", async () => {
        await assertReachesDevice(
          async () => curlAnswer(await curl(["-H", `Host: ${DEVICE_ID}.${HOST_SUFFIX}`, `http://127.0.0.1:${gatewayPort()}/TEMPERATURE`])),
          "/TEMPERATURE",
          transport,
        );
      });

      it("serves curl --resolve alarm-17.devices.test:PORT:127.0.0.1 (the device's own name pointed at the gateway)", async () => {
        const name = `${DEVICE_ID}.${HOST_SUFFIX}`;
        await assertReachesDevice(
          async () =>
            curlAnswer(await curl(["--resolve", `${name}:${gatewayPort()}:127.0.0.1`, `http://${name}:${gatewayPort()}/TEMPERATURE?x=1`])),
          "/TEMPERATURE?x=1",
          transport,
        );
      });
    });
  }

  describe("is never an open proxy", () => {
    before(() => register("xmpp")); // the device is online and registered at 10.0.0.17:8080 throughout

    it("refuses an address no device owns: 403 GW_NOT_A_DEVICE", async () => {
      const answer = await assertDeviceUntouched(async () => curlAnswer(await curl(["-x", proxy(), "http://10.9.9.9:80/"])));
      assertGatewayError(answer, 403, "GW_NOT_A_DEVICE");
    });

    it("refuses an https:// URL: curl's CONNECT tunnel gets 405, and so does a raw CONNECT", async () => {
      const run = await assertDeviceUntouched(() => curl(["-x", proxy(), "https://example.com/"]));
      assert.equal(run.exitCode, 56, `curl: ${run.stderr}`);
      assert.match(run.stderr, /CONNECT tunnel failed, response 405/);
      const raw = await assertDeviceUntouched(() => rawRequest(gatewayPort(), "CONNECT", "example.com:443", "example.com:443"));
      assertGatewayError(raw, 405, "GW_METHOD_NOT_ALLOWED");
      assert.equal(raw.headers.get("allow"), "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE");
    });

    it("refuses a local service that is not a device (403), and never connects to it", async () => {
      const victim = new Victim();
      await victim.start();
      try {
        const answer = await assertDeviceUntouched(async () => curlAnswer(await curl(["-x", proxy(), `http://127.0.0.1:${victim.port}/`])));
        assertGatewayError(answer, 403, "GW_NOT_A_DEVICE");
        const ours = await victim.barrier();
        assert.deepEqual(victim.remotePorts, [ours], "someone else connected to the victim");
      } finally {
        await victim.stop();
      }
    });

    it("refuses the stack's own Redis as a target (403), and Redis sees no connection from the gateway", async () => {
      const before = await redisConnectionsReceived(stack.redis.port);
      const answer = await assertDeviceUntouched(async () =>
        curlAnswer(await curl(["-x", proxy(), `http://127.0.0.1:${stack.redis.port}/`])),
      );
      assertGatewayError(answer, 403, "GW_NOT_A_DEVICE");
      // The only new connection is the second INFO's own.
      assert.equal(await redisConnectionsReceived(stack.redis.port), before + 1);
    });

    it("refuses an absolute URI with user info, even at a device's address: 400 GW_BAD_DEVICE_ID", async () => {
      // curl never sends this (it moves user:pw into Authorization), so the request is written by hand.
      const answer = await assertDeviceUntouched(() =>
        rawRequest(gatewayPort(), "GET", `http://user@${LEGACY_ADDRESS}/TEMPERATURE`, LEGACY_ADDRESS),
      );
      assertGatewayError(answer, 400, "GW_BAD_DEVICE_ID");
    });

    it("refuses an https:// absolute URI at a device's address: 403 GW_NOT_A_DEVICE", async () => {
      const answer = await assertDeviceUntouched(() =>
        rawRequest(gatewayPort(), "GET", `https://${LEGACY_ADDRESS}/TEMPERATURE`, LEGACY_ADDRESS),
      );
      assertGatewayError(answer, 403, "GW_NOT_A_DEVICE");
    });

    it("refuses CONNECT to a registered device's legacy address: 405, no tunnel", async () => {
      const run = await assertDeviceUntouched(() => curl(["-p", "-x", proxy(), `http://${LEGACY_ADDRESS}/TEMPERATURE`]));
      assert.equal(run.exitCode, 56, `curl: ${run.stderr}`);
      assert.match(run.stderr, /CONNECT tunnel failed, response 405/);
      const raw = await assertDeviceUntouched(() => rawRequest(gatewayPort(), "CONNECT", LEGACY_ADDRESS, LEGACY_ADDRESS));
      assertGatewayError(raw, 405, "GW_METHOD_NOT_ALLOWED");
    });
  });
});
