import type { Router } from "express";
import express from "express";
import type { AsyncRequests } from "../../delivery/async-requests.js";
import { writeHeldAnswer } from "../../messages/device-messages.js";
import { errorOf, replyOf } from "../../delivery/stored-outcome.js";
import { GatewayError } from "../../errors.js";
import { facts } from "../context.js";
import { sendError } from "../error-response.js";

const REQUEST_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `GET /requests/{id}`, on any instance: 202 while the request is pending or queued, then the device's reply
 * (or the catalogue error it ended with) for as long as the result is kept, 404 when unknown or gone.
 */
export function requestRoutes(asyncRequests: Pick<AsyncRequests, "get">): Router {
  const router = express.Router();
  router.get("/requests/:id", async (req, res, next) => {
    try {
      const id = req.params.id ?? "";
      const entry = REQUEST_ID.test(id) ? await asyncRequests.get(id) : undefined;
      if (!entry) {
        sendError(res, new GatewayError("GW_UNKNOWN_REQUEST"));
        return;
      }
      facts(res).deviceId = entry.deviceId;
      if (entry.state !== "done") {
        res.status(202).setHeader("Retry-After", "1").json({ requestId: id, status: entry.state });
        return;
      }
      if (entry.outcome.kind === "reply") writeHeldAnswer(req.method, res, replyOf(entry.outcome), facts(res).requestId);
      else sendError(res, errorOf(entry.outcome));
    } catch (err) {
      next(err);
    }
  });
  return router;
}
