import { createHash, timingSafeEqual } from "node:crypto";
import type { Request, Response, Router } from "express";
import express from "express";
import { GatewayError, isGatewayError } from "../../errors.js";
import { sendError } from "../error-response.js";
import { bulkRoute } from "./admin-bulk.js";
import { deviceRoute } from "./admin-devices.js";
import { listingRoute } from "./admin-listing.js";
import { waveRoute } from "./admin-waves.js";
import { notAllowed, type AdminRoute, type AdminRouteDeps } from "./admin-shared.js";

export { ADMIN_MAX_BODY_BYTES, type AdminRouteDeps, type PresenceLookup } from "./admin-shared.js";

/**
 * The admin API (README, "Admin API"; docs/admin-api.md), bearer-token protected. Every path under /admin
 * asks for the token first, so the API's shape cannot be probed without it; then each family of paths is
 * asked in turn (adminRouteTable) whether the path is its own.
 */
export function adminRoutes(deps: AdminRouteDeps): Router {
  const router = express.Router();
  if (deps.token === undefined) return router; // off: /admin falls through to the 404 of unknown routes
  const expected = digest(deps.token);
  const routes = adminRouteTable(deps);
  router.all(/^\/admin(\/.*)?$/, (req, res, next) => {
    handle(routes, expected, req, res).catch(next);
  });
  return router;
}

/**
 * The families of admin paths, in the order they are asked. `POST /admin/devices/bulk` comes before the
 * single devices, whose path it shares with a device named "bulk" (which keeps its other methods). A new
 * family of paths is a module of its own (an AdminRoute) and one more line here.
 */
function adminRouteTable(deps: AdminRouteDeps): AdminRoute[] {
  return [migrationRoute(deps), listingRoute(deps), bulkRoute(deps), deviceRoute(deps), waveRoute(deps)];
}

async function handle(routes: readonly AdminRoute[], expected: Buffer, req: Request, res: Response): Promise<void> {
  res.setHeader("Cache-Control", "no-store");
  try {
    authorize(req, expected);
    for (const route of routes) if (await route(req, res)) return;
    throw new GatewayError("GW_NOT_FOUND");
  } catch (err) {
    if (res.destroyed) return;
    if (!isGatewayError(err)) throw err;
    if (err.code === "GW_UNAUTHORIZED") res.setHeader("WWW-Authenticate", "Bearer");
    if (err.code === "GW_PAYLOAD_TOO_LARGE") res.setHeader("Connection", "close");
    sendError(res, err);
  }
}

/** `GET /admin/migration`: where the fleet's migration stands (absent without a MigrationView). */
function migrationRoute(deps: AdminRouteDeps): AdminRoute {
  return async (req, res) => {
    if (req.path !== "/admin/migration" || !deps.migration) return false;
    if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed(res, "GET, HEAD");
    res.json(await deps.migration.summary());
    return true;
  };
}

/** `Authorization: Bearer <token>`, compared as SHA-256 digests in constant time (no length leaks either). */
function authorize(req: Request, expected: Buffer): void {
  const given = /^Bearer +(\S+) *$/i.exec(req.get("authorization") ?? "")?.[1];
  if (given === undefined || !timingSafeEqual(digest(given), expected)) {
    throw new GatewayError("GW_UNAUTHORIZED", {
      message: given === undefined ? "admin API needs Authorization: Bearer <token>" : "wrong bearer token",
    });
  }
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token, "utf8").digest();
}
