import { GatewayError } from "../../errors.js";
import { parseWaveRequest } from "../../waves/request.js";
import { notAllowed, readJson, type AdminRoute, type AdminRouteDeps } from "./admin-shared.js";

/**
 * Largest body of `POST /admin/waves`: room for 10,000 ids of 64 characters, quoted and separated (the
 * registry's own bodies, one entry each, stop at 64 KiB).
 */
export const WAVE_MAX_BODY_BYTES = 1024 * 1024;

const COLLECTION = /^\/admin\/waves\/?$/;
const ITEM = /^\/admin\/waves\/([^/]+)$/;
const ROLLBACK = /^\/admin\/waves\/([^/]+)\/rollback$/;
/** Every path of the family: `/admin/waves` and below. */
const WAVE_PATHS = /^\/admin\/waves(\/|$)/;

/**
 * Migration waves' admin paths (docs/admin-api.md, "Migration waves"): `GET|POST /admin/waves`,
 * `GET /admin/waves/{id}`, `POST /admin/waves/{id}/rollback`; not its own without `deps.waves`.
 */
export function waveRoute(deps: AdminRouteDeps): AdminRoute {
  return async (req, res) => {
    const waves = deps.waves;
    if (!waves || !WAVE_PATHS.test(req.path)) return false;
    if (COLLECTION.test(req.path)) {
      if (req.method === "GET" || req.method === "HEAD") {
        res.json({ waves: await waves.list() });
        return true;
      }
      if (req.method !== "POST") throw notAllowed(res, "GET, HEAD, POST");
      const answer = await waves.create(parseWaveRequest(await readJson(req, WAVE_MAX_BODY_BYTES)));
      if (!("dryRun" in answer)) res.status(201).setHeader("Location", `/admin/waves/${answer.id}`);
      res.json(answer);
      return true;
    }
    const rollback = ROLLBACK.exec(req.path);
    if (rollback) {
      if (req.method !== "POST") throw notAllowed(res, "POST");
      res.json(await waves.rollBackByHand(waveId(rollback[1])));
      return true;
    }
    const item = ITEM.exec(req.path);
    if (!item) throw new GatewayError("GW_NOT_FOUND");
    if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed(res, "GET, HEAD");
    res.json(await waves.view(waveId(item[1]), true));
    return true;
  };
}

/** A wave id as the store makes them (`w` and a number); anything else names no wave (404). */
function waveId(raw: string | undefined): string {
  const id = raw ?? "";
  if (!/^w[1-9][0-9]{0,15}$/.test(id)) throw new GatewayError("GW_NOT_FOUND", { message: `no wave ${JSON.stringify(id.slice(0, 40))}` });
  return id;
}
