/**
 * The error writer (gateway/http/error-response.ts) must never throw: it runs after something else failed,
 * and a failed writeHead leaves its status message on the response (node assigns it before validating it).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import express from "express";
import request from "supertest";
import { GatewayError } from "../../gateway/errors.js";
import { sendError } from "../../gateway/http/error-response.js";
import { requestId } from "../../gateway/http/request-id.js";

describe("sendError", () => {
  it("writes the catalogue error after a writeHead that threw on a device's reason phrase", async () => {
    const app = express();
    app.use(requestId());
    let threw = false;
    let escaped: unknown;
    app.get("/", (_req, res) => {
      try {
        res.writeHead(200, "O\x7fK");
      } catch {
        threw = true;
      }
      try {
        sendError(res, new GatewayError("GW_BAD_UPSTREAM_REPLY"));
      } catch (err) {
        escaped = err;
      }
    });
    const res = await request(app).get("/").timeout(5000); // a bound, not a wait: the old writer left the client hanging
    assert.equal(threw, true, "node's writeHead refuses DEL in a reason phrase (the premise)");
    assert.equal(escaped, undefined);
    assert.equal(res.status, 502);
    assert.equal((res.body as { error: { code: string } }).error.code, "GW_BAD_UPSTREAM_REPLY");
    assert.equal(res.headers["x-request-id"], (res.body as { error: { requestId: string } }).error.requestId);
  });

  it("after a writeHead that threw on a status code below 100, answers with the catalogue status", async () => {
    const app = express();
    app.use(requestId());
    app.get("/", (_req, res) => {
      try {
        res.writeHead(99, "Low");
      } catch {
        // the premise: node refuses it
      }
      sendError(res, new GatewayError("GW_BAD_UPSTREAM_REPLY"));
    });
    const res = await request(app).get("/").timeout(5000); // a bound, not a wait: the old writer left the client hanging
    assert.equal(res.status, 502);
  });
});
