import type { Request, Response } from "express";
import { GatewayError } from "../../errors.js";
import type { WaveController } from "../../waves/controller.js";
import { parseWaveRequest } from "../../waves/request.js";
import { readBody } from "../body.js";

/**
 * Largest body of `POST /admin/waves`: room for 10,000 ids of 64 characters, quoted and separated (the
 * registry's own bodies, one entry each, stop at 64 KiB).
 */
export const WAVE_MAX_BODY_BYTES = 1024 * 1024;

const COLLECTION = /^\/admin\/waves\/?$/;
const ITEM = /^\/admin\/waves\/([^/]+)$/;
const ROLLBACK = /^\/admin\/waves\/([^/]+)\/rollback$/;

/** The paths this handler answers: `/admin/waves` and everything under it. */
export const WAVE_PATHS = /^\/admin\/waves(\/|$)/;

/**
 * Migration waves' admin API (docs/admin-api.md, "Migration waves"): `GET|POST /admin/waves`,
 * `GET /admin/waves/{id}`, `POST /admin/waves/{id}/rollback`. The admin router calls it for WAVE_PATHS once
 * the request is authorized; it answers, or throws a catalogue error for the router to write.
 */
export function waveRoutes(waves: Pick<WaveController, "create" | "view" | "list" | "rollBackByHand">) {
  return async (req: Request, res: Response): Promise<void> => {
    if (COLLECTION.test(req.path)) {
      if (req.method === "GET" || req.method === "HEAD") {
        res.json({ waves: await waves.list() });
        return;
      }
      if (req.method !== "POST") throw notAllowed(res, "GET, HEAD, POST");
      const request = parseWaveRequest(await readJson(req));
      const answer = await waves.create(request);
      if ("dryRun" in answer) {
        res.json(answer);
        return;
      }
      res.status(201).setHeader("Location", `/admin/waves/${answer.id}`);
      res.json(answer);
      return;
    }
    const rollback = ROLLBACK.exec(req.path);
    if (rollback) {
      if (req.method !== "POST") throw notAllowed(res, "POST");
      res.json(await waves.rollBackByHand(waveId(rollback[1])));
      return;
    }
    const item = ITEM.exec(req.path);
    if (!item) throw new GatewayError("GW_NOT_FOUND");
    if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed(res, "GET, HEAD");
    res.json(await waves.view(waveId(item[1]), true));
  };
}

/** A wave id as the store makes them (`w` and a number); anything else names no wave (404). */
function waveId(raw: string | undefined): string {
  const id = raw ?? "";
  if (!/^w[1-9][0-9]{0,15}$/.test(id)) throw new GatewayError("GW_NOT_FOUND", { message: `no wave ${JSON.stringify(id.slice(0, 40))}` });
  return id;
}

async function readJson(req: Request): Promise<unknown> {
  const raw = await readBody(req, WAVE_MAX_BODY_BYTES);
  if (raw.length === 0) throw invalidBody("body is empty: a JSON object is expected");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(raw);
  } catch {
    throw invalidBody("body is not valid UTF-8");
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw invalidBody(`body is not valid JSON: ${(err as Error).message}`);
  }
}

function invalidBody(message: string): GatewayError {
  return new GatewayError("GW_INVALID_FIELD", { field: "body", message });
}

function notAllowed(res: Response, allow: string): GatewayError {
  res.setHeader("Allow", allow);
  return new GatewayError("GW_METHOD_NOT_ALLOWED", { message: `method not allowed here; allowed: ${allow}` });
}
