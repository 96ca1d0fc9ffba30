import type { Response } from "express";
import type { ErrorCode } from "../errors.js";
import type { Transport } from "../metrics/metrics.js";

/** What a request's handlers learn about it, read back by the access log and the metrics. */
export interface RequestFacts {
  requestId: string;
  deviceId?: string;
  transport: Transport;
  errorCode?: ErrorCode;
}

export function facts(res: Response): RequestFacts {
  return res.locals as RequestFacts;
}
