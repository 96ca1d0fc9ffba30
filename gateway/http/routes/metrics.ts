import type { Router } from "express";
import express from "express";
import type { Registry } from "prom-client";

/** Prometheus exposition of this instance's own registry. */
export function metricsRoutes(registry: Registry): Router {
  const router = express.Router();
  router.get("/metrics", async (_req, res, next) => {
    try {
      const body = await registry.metrics();
      res.setHeader("Content-Type", registry.contentType);
      res.end(body);
    } catch (err) {
      next(err);
    }
  });
  return router;
}
