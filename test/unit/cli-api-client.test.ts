// gatewayctl's client against answers that are not the gateway's own: an HTTP server on 127.0.0.1 stands for
// an older gateway, a proxy in the way, or another server at that URL. Each is one clear error line, exit 1.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { run } from "../../cli/run.js";

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

describe("gatewayctl client: answers that are not the admin API's", () => {
  let server: Server;
  let url: string;
  let handler: Handler = (_req, res) => res.end();
  const seen: Array<{ method?: string; url?: string; authorization?: string; body: string }> = [];

  before(async () => {
    server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        seen.push({ method: req.method, url: req.url, authorization: req.headers.authorization, body: Buffer.concat(parts).toString() });
        handler(req, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function gatewayctl(args: string[], answer: Handler) {
    handler = answer;
    seen.length = 0;
    let stdout = "";
    let stderr = "";
    const code = await run(args, {
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: (t: string) => (stderr += t) },
      env: { GATEWAY_URL: url, GATEWAY_ADMIN_TOKEN: "tok-123" },
    });
    return { code, stdout, stderr };
  }

  const json =
    (status: number, body: unknown): Handler =>
    (_req, res) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };

  it("sends the bearer token and the filters as the listing's parameters", async () => {
    const ran = await gatewayctl(
      ["devices", "list", "--transport", "http", "--prefix", "dev-", "--online", "false", "--limit", "5"],
      json(200, {
        devices: [],
        nextCursor: null,
        remaining: 0,
      }),
    );
    assert.equal(ran.code, 0);
    assert.deepEqual(seen, [
      { method: "GET", url: "/admin/devices?transport=http&online=false&prefix=dev-&limit=5", authorization: "Bearer tok-123", body: "" },
    ]);
  });

  it("a gateway from before paged listing (one JSON array): said so, exit 1", async () => {
    const ran = await gatewayctl(["devices", "list"], json(200, [{ id: "dev-1", transport: "http" }]));
    assert.equal(ran.code, 1);
    assert.equal(ran.stderr, "error: GET /admin/devices answered a JSON array: this gateway predates paged listing (docs/admin-api.md)\n");
    assert.equal(ran.stdout, "");
  });

  it("an answer of another shape, or not JSON at all: exit 1 naming the request", async () => {
    const odd = await gatewayctl(["devices", "status"], json(200, { hello: "world" }));
    assert.equal(odd.code, 1);
    assert.match(odd.stderr, /^error: the answer to GET \/admin\/migration is not what the admin API answers/);
    const html = await gatewayctl(["devices", "get", "dev-1"], (_req, res) => res.end("<html>welcome</html>"));
    assert.equal(html.code, 1);
    assert.match(html.stderr, new RegExp(`^error: the answer to GET /admin/devices/dev-1 is not JSON: is ${url} the gateway\\?\\n$`));
  });

  it("an error that is not the gateway's (a proxy's page): its status as the code, its text shortened, escapes shown", async () => {
    const ran = await gatewayctl(["devices", "get", "dev-1"], (_req, res) => {
      res.writeHead(502, { "content-type": "text/html" });
      res.end(`<h1>Bad\n gateway</h1>\u001b[2J${"x".repeat(500)}`);
    });
    assert.equal(ran.code, 1);
    assert.match(ran.stderr, /^error: HTTP_502: <h1>Bad gateway<\/h1>\\x1b\[2Jx+\n$/);
    assert.ok(ran.stderr.length < 260, ran.stderr);
  });

  it("the gateway's error with its field; the message's control characters escaped", async () => {
    const ran = await gatewayctl(
      ["devices", "set", "dev-1", "timeoutMs=0"],
      json(400, {
        error: { code: "GW_INVALID_FIELD", message: "timeoutMs\u001b[31m bad", field: "timeoutMs", requestId: "r1" },
      }),
    );
    assert.equal(ran.code, 1);
    assert.equal(ran.stderr, "error: GW_INVALID_FIELD: timeoutMs\\x1b[31m bad (field: timeoutMs)\n");
    assert.deepEqual(JSON.parse(seen[0]?.body ?? ""), { timeoutMs: 0 });
    assert.equal(seen[0]?.method, "PATCH");
  });

  it("a redirect is not followed (the token would go with it): its status is the error", async () => {
    const ran = await gatewayctl(["devices", "status"], (_req, res) => {
      res.writeHead(302, { location: "http://127.0.0.1:9/elsewhere" });
      res.end();
    });
    assert.equal(ran.code, 1);
    assert.equal(seen.length, 1);
    assert.match(ran.stderr, /^error: HTTP_302: status 302 without a body\n$/);
  });

  it("a cutover whose call fails part way: what was done is said before the error", async () => {
    let calls = 0;
    const ran = await gatewayctl(["devices", "cutover", "--prefix", "dev-"], (_req, res) => {
      calls++;
      if (calls === 1) {
        json(200, {
          dryRun: false,
          matched: 2,
          changed: 2,
          unchanged: 0,
          failed: 0,
          results: [
            { id: "dev-1", outcome: "changed", transport: { from: "http", to: "xmpp" } },
            { id: "dev-2", outcome: "changed", transport: { from: "http", to: "xmpp" } },
          ],
          nextCursor: "c1",
          remaining: 5,
        })(_req, res);
      } else json(503, { error: { code: "GW_STORE_UNAVAILABLE", message: "gateway store (Redis) is unreachable" } })(_req, res);
    });
    assert.equal(ran.code, 1);
    assert.equal(
      ran.stderr,
      [
        "cutover: 2 changed, 0 unchanged, 0 failed, ~5 left",
        "cutover stopped after 2 changed, 0 unchanged, 0 failed",
        "error: GW_STORE_UNAVAILABLE: gateway store (Redis) is unreachable",
        "",
      ].join("\n"),
    );
    assert.deepEqual(
      seen.map((s) => JSON.parse(s.body) as unknown),
      [
        { filter: { prefix: "dev-" }, set: { transport: "xmpp" }, dryRun: false, cursor: null },
        { filter: { prefix: "dev-" }, set: { transport: "xmpp" }, dryRun: false, cursor: "c1" },
      ],
    );
  });

  it("a URL that is not http(s), and both token variables at once: usage errors (exit 2)", async () => {
    const ftp = await gatewayctl(["devices", "status", "--url", "ftp://gw"], json(200, {}));
    assert.equal(ftp.code, 2);
    assert.match(ftp.stderr, /^error: the gateway's URL must be http:\/\/ or https:\/\/ \(--url\)/);
    let stderr = "";
    const code = await run(["devices", "status"], {
      stdout: { write: () => true },
      stderr: { write: (t: string) => (stderr += t) },
      env: { GATEWAY_URL: url, GATEWAY_ADMIN_TOKEN: "a", GATEWAY_ADMIN_TOKEN_FILE: "/nonexistent" },
    });
    assert.equal(code, 2);
    assert.equal(stderr, "error: GATEWAY_ADMIN_TOKEN and GATEWAY_ADMIN_TOKEN_FILE are both set: keep one\n");
  });
});
