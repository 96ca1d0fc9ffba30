// The container stack's Prosody and HAProxy configurations, rendered from the same templates the tests
// run (deploy/prosody/prosody.cfg.lua, deploy/haproxy/haproxy.cfg) with the stack's host names and ports.
// The rendered files are committed next to this script, because compose mounts files as they are; a test
// renders them again and fails if they differ, so they cannot drift from the templates.
//
//   node --import tsx deploy/compose/render.ts    rewrites deploy/compose/prosody.cfg.lua and haproxy.cfg
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { luaString } from "../../local-stack/prosody.js";
import { HAPROXY_TEMPLATE } from "../../local-stack/haproxy.js";
import { fillPlaceholders } from "../../local-stack/template.js";

/** The values deploy/docker-compose.yml is written with (the test checks that it agrees). */
export const COMPOSE = {
  /** The devices' XMPP domain: accounts dev-17@localhost, ... */
  vhost: "localhost",
  componentDomain: "gateway.localhost",
  /** A stack on one machine's private network, for trying things out; not a production secret. */
  componentSecret: "compose-component-secret",
  c2sPort: 5222,
  componentPort: 5347,
  /** Service names of the gateway instances, which are also their host names. */
  gateways: ["gateway-a", "gateway-b"],
  gatewayPort: 8080,
  /** HAProxy's port inside its container (published on the host as 8080). */
  frontendPort: 8080,
} as const;

export const PROSODY_TEMPLATE = fileURLToPath(new URL("../prosody/prosody.cfg.lua", import.meta.url));
export const COMPOSE_PROSODY = fileURLToPath(new URL("./prosody.cfg.lua", import.meta.url));
export const COMPOSE_HAPROXY = fileURLToPath(new URL("./haproxy.cfg", import.meta.url));

/** The template's leading comment block explains the template; the rendered file says where it came from. */
function replaceHeader(text: string, comment: string, header: readonly string[]): string {
  const lines = text.split("\n");
  let start = 0;
  while (start < lines.length && lines[start]?.startsWith(comment)) start++;
  return [...header.map((h) => `${comment} ${h}`.trimEnd()), ...lines.slice(start)].join("\n");
}

const REGENERATE = "Edit the template, not this file, then run: node --import tsx deploy/compose/render.ts";

export function renderComposeProsody(template: string): string {
  const components = [
    `Component ${luaString(COMPOSE.componentDomain)}`,
    `    component_secret = ${luaString(COMPOSE.componentSecret)}`,
    // Both gateway instances claim the domain; the second waits as a hot standby and takes over within
    // its reconnect backoff when the first one goes (README, "Running several instances").
    `    component_conflict_resolve = ${luaString("kick_new")}`,
  ].join("\n");
  const filled = fillPlaceholders(
    template,
    {
      // Inside the container: Prosody's usual data directory (the container runs it as root).
      DIR: "/var/lib/prosody",
      // Every interface of the container, which is reachable only on the stack's private network: the
      // compose file publishes neither port on the host.
      INTERFACE: "*",
      C2S_PORT: String(COMPOSE.c2sPort),
      COMPONENT_PORT: String(COMPOSE.componentPort),
      VHOST: COMPOSE.vhost,
      COMPONENTS: components,
    },
    { comment: /^\s*--/, what: PROSODY_TEMPLATE },
  );
  return replaceHeader(filled, "--", [
    "Prosody of the container stack (deploy/docker-compose.yml), rendered from deploy/prosody/prosody.cfg.lua.",
    REGENERATE,
    "",
  ]);
}

export function renderComposeHaproxy(template: string): string {
  // The template binds the frontend on loopback and addresses instances by port on 127.0.0.1; in the
  // stack, HAProxy listens on its container's interfaces and reaches the instances by service name.
  const loopbackBind = /^([ \t]*bind )127\.0\.0\.1:(@FRONTEND_PORT@)[ \t]*$/m;
  if (!loopbackBind.test(template)) throw new Error(`${HAPROXY_TEMPLATE}: no "bind 127.0.0.1:@FRONTEND_PORT@" line to adapt`);
  const servers = /^([ \t]*)@SERVERS@[ \t]*$/m.exec(template);
  if (!servers) throw new Error(`${HAPROXY_TEMPLATE}: no @SERVERS@ line`);
  const indent = servers[1] ?? "";
  const serverLines = COMPOSE.gateways.map(
    // init-addr none: the address comes from the resolvers below, at run time, so HAProxy starts (and
    // `haproxy -c` passes) whether or not the instance's container is up yet.
    (name) => `${indent}server ${name} ${name}:${COMPOSE.gatewayPort} resolvers docker init-addr none`,
  );
  const adapted = template.replace(loopbackBind, "$1:$2").replace(/^[ \t]*@SERVERS@[ \t]*$/m, serverLines.join("\n"));
  const filled = fillPlaceholders(
    adapted,
    { FRONTEND_PORT: String(COMPOSE.frontendPort), STATS_SOCKET: "/tmp/haproxy.sock" },
    { comment: /^\s*#/, what: HAPROXY_TEMPLATE },
  );
  const resolvers = [
    "",
    "# Docker's embedded DNS. A gateway container that is recreated comes back with another address: HAProxy",
    "# follows the name instead of health-checking the old address forever.",
    "resolvers docker",
    "    nameserver dns 127.0.0.11:53",
    "    hold valid 10s",
    "",
  ];
  return replaceHeader(`${filled.trimEnd()}\n${resolvers.join("\n")}`, "#", [
    "HAProxy of the container stack (deploy/docker-compose.yml), rendered from deploy/haproxy/haproxy.cfg.",
    REGENERATE,
    "",
  ]);
}

/** Both files as they should be committed. */
export async function renderComposeConfigs(): Promise<{ prosody: string; haproxy: string }> {
  return {
    prosody: renderComposeProsody(await readFile(PROSODY_TEMPLATE, "utf8")),
    haproxy: renderComposeHaproxy(await readFile(HAPROXY_TEMPLATE, "utf8")),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { prosody, haproxy } = await renderComposeConfigs();
  await writeFile(COMPOSE_PROSODY, prosody);
  await writeFile(COMPOSE_HAPROXY, haproxy);
  process.stdout.write(`wrote ${COMPOSE_PROSODY}\nwrote ${COMPOSE_HAPROXY}\n`);
}
