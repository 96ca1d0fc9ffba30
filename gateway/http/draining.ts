import type { RequestHandler } from "express";
import { GatewayError } from "../errors.js";
import { sendError } from "./error-response.js";

/**
 * While the instance drains, requests that still arrive on kept-alive connections get 503
 * GW_SHUTTING_DOWN with `Connection: close`, so the client retries elsewhere. Health endpoints stay up.
 */
export function refuseWhileDraining(isDraining: () => boolean): RequestHandler {
  return (req, res, next) => {
    if (!isDraining() || req.path === "/healthz" || req.path === "/readyz" || req.path === "/metrics") {
      next();
      return;
    }
    res.setHeader("Connection", "close");
    sendError(res, new GatewayError("GW_SHUTTING_DOWN", { retryAfterS: 1 }));
  };
}
