import type { Router } from "express";
import express from "express";

export interface ReadinessCheck {
  /** Each named dependency and whether it is usable now. */
  checks(): Record<string, boolean>;
}

/** `/healthz`: the process answers. `/readyz`: it can serve (Redis ready, component online, not draining). */
export function healthRoutes(readiness: ReadinessCheck): Router {
  const router = express.Router();
  router.get("/healthz", (_req, res) => {
    res.json({ status: "ok" });
  });
  router.get("/readyz", (_req, res) => {
    const checks = readiness.checks();
    const ready = Object.values(checks).every(Boolean);
    res.status(ready ? 200 : 503).json({ status: ready ? "ready" : "not-ready", checks });
  });
  return router;
}
