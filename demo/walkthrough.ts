// What the demo prints once everything answers: the fleet, then a walk through a live cut-over, as
// commands to copy. Every command is one line, indented by two spaces, after a "  # " line saying what it
// shows, so that a reader can follow it and a program (test/e2e/demo.test.ts) can pick the curl ones out.
import { CUT_OVER, type DemoDevice } from "./fleet.js";

export interface Walkthrough {
  /** The gateway as clients reach it, e.g. http://localhost:8080. */
  base: string;
  adminToken: string;
  fleet: readonly DemoDevice[];
}

export function walkthrough({ base, adminToken, fleet }: Walkthrough): string[] {
  const auth = `-H "Authorization: Bearer ${adminToken}"`;
  const xmppDevice = first(fleet, (d) => d.transport === "xmpp" && !d.fallback);
  const shadowDevice = first(fleet, (d) => d.transport === "shadow");
  const cutOver = first(fleet, (d) => d.id === CUT_OVER);
  const idWidth = Math.max(...fleet.map((d) => d.id.length));
  const addressWidth = Math.max(...fleet.map((d) => d.legacyAddress.length));
  return [
    `The gateway answers on ${base}. Admin token, generated for this run: ${adminToken}`,
    "",
    "The fleet, in the middle of its migration (device, transport, legacy address, stage):",
    ...fleet.map((d) => `  ${d.id.padEnd(idWidth)}  ${d.transport.padEnd(6)}  ${d.legacyAddress.padEnd(addressWidth)}  ${d.note}`),
    "",
    "Try:",
    `  # ${CUT_OVER} is still on HTTP: the gateway passes the request through to its legacy server`,
    `  curl -i ${base}/devices/${CUT_OVER}/TEMPERATURE`,
    `  # the same, as an unchanged legacy client sends it to ${cutOver.legacyAddress}, with the gateway as its HTTP proxy`,
    `  curl -i -x ${base} http://${cutOver.legacyAddress}/TEMPERATURE`,
    `  # ${xmppDevice.id} is migrated: the gateway asks its agent over XMPP (XEP-0332), the agent asks the device`,
    `  curl -i ${base}/devices/${xmppDevice.id}/TEMPERATURE`,
    `  # ${shadowDevice.id} is in shadow mode: the HTTP answer, compared with the XMPP one (readings drift, so /TEMPERATURE mismatches)`,
    `  curl -i ${base}/devices/${shadowDevice.id}/BULB`,
    `  # cut ${CUT_OVER} over to XMPP, live: no restart, its agent is already online`,
    `  curl -X PATCH ${base}/admin/devices/${CUT_OVER} ${auth} -d '{"transport":"xmpp"}'`,
    `  # the same request again: the same kind of answer, now over XMPP through its agent (the metrics below tell)`,
    `  curl -i ${base}/devices/${CUT_OVER}/TEMPERATURE`,
    `  # which path answered: requests by transport (http, then xmpp for ${CUT_OVER}), devices by transport`,
    `  curl -s ${base}/metrics | grep -E '^gateway_(http_requests_total|devices)'`,
    `  # where the migration stands: devices by transport, online, shadow mismatches`,
    `  curl ${base}/admin/migration ${auth}`,
    `  # roll back at any time`,
    `  curl -X PATCH ${base}/admin/devices/${CUT_OVER} ${auth} -d '{"transport":"http"}'`,
    `  # the same through the command-line client (docs/admin-api.md)`,
    `  GATEWAY_URL=${base} GATEWAY_ADMIN_TOKEN=${adminToken} npx gatewayctl devices status`,
    "",
    "Dashboards: Prometheus scrapes this /metrics (deploy/prometheus/prometheus.yml), and deploy/grafana/ has the",
    "migration dashboard; deploy/docker-compose.yml runs both with the gateway (deploy/README.md).",
  ];
}

function first(fleet: readonly DemoDevice[], test: (d: DemoDevice) => boolean): DemoDevice {
  const device = fleet.find(test);
  if (!device) throw new Error("the demo fleet lacks a device the walkthrough shows");
  return device;
}
