// Starts a whole gateway in this process against a harness stack, on port 0 (its port read back from its
// HTTP server), with silent logs. A gateway as its own process: gateway-process.ts.
import { randomBytes } from "node:crypto";
import { loadConfig, type Config } from "../../gateway/config.js";
import { createGateway, type Gateway, type GatewayOptions } from "../../gateway/compose.js";
import { createLogger } from "../../gateway/log.js";
import type { Env } from "../../lib/env.js";
import { pollUntil } from "../../local-stack/ports.js";
import { testComponents, type Stack, type Teardown } from "./stack.js";

export interface RunningGateway {
  gateway: Gateway;
  config: Config;
  url: string;
  stop(): Promise<void>;
}

/** Where a gateway connects: a Redis, and an XMPP server (Prosody or ejabberd) with a component. */
export interface GatewayTargets {
  redis: Pick<Stack["redis"], "url">;
  prosody: Pick<Stack["prosody"], "components" | "componentService" | "vhost">;
}

/** The environment a gateway needs to reach a harness stack (port 0, silent logs); tests add their own overrides. */
export function gatewayEnv(stack: GatewayTargets, overrides: Env = {}): Env {
  const component = stack.prosody.components[0];
  return {
    GATEWAY_HOST: "127.0.0.1",
    GATEWAY_PORT: "0",
    REDIS_URL: stack.redis.url,
    // Each gateway gets its own key space, so suites sharing a Redis never see each other's ids.
    REDIS_KEY_PREFIX: `t-${randomBytes(4).toString("hex")}:`,
    XMPP_COMPONENT_SERVICE: stack.prosody.componentService,
    XMPP_COMPONENT_DOMAIN: component?.domain ?? "gateway.localhost",
    XMPP_COMPONENT_SECRET: component?.secret ?? "test-secret",
    DEVICE_JID_TEMPLATE: `{id}@${stack.prosody.vhost}/agent`,
    GATEWAY_DRAIN_TIMEOUT_MS: "2000",
    GATEWAY_DRAIN_GRACE_MS: "0",
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...overrides,
  };
}

/** `options`: what createGateway takes besides the configuration (a tracer provider, for the tracing tests). */
export async function startGateway(stack: GatewayTargets, overrides: Env = {}, options: GatewayOptions = {}): Promise<RunningGateway> {
  const config = loadConfig(gatewayEnv(stack, overrides));
  const gateway = createGateway(config, createLogger(config.logLevel), options);
  await gateway.start();
  await gateway.component.waitOnline(10_000);
  return { gateway, config, url: `http://127.0.0.1:${gateway.http.port}`, stop: () => gateway.stop() };
}

/**
 * Two instances of one deployment (same Redis, the settings in `common`) on a Prosody with two component
 * domains (testComponents(2)): A on the first, B on the second, with instance ids "a" and "b"; both stopped by
 * `teardown`.
 */
export async function startTwoGateways(
  stack: GatewayTargets,
  teardown: Teardown,
  common: Env,
): Promise<[a: RunningGateway, b: RunningGateway]> {
  const second = testComponents(2)[1] as { domain: string; secret: string };
  const a = teardown.stopLater("gateway A", await startGateway(stack, { ...common, GATEWAY_INSTANCE_ID: "a" }));
  const b = teardown.stopLater(
    "gateway B",
    await startGateway(stack, {
      ...common,
      GATEWAY_INSTANCE_ID: "b",
      XMPP_COMPONENT_DOMAIN: second.domain,
      XMPP_COMPONENT_SECRET: second.secret,
    }),
  );
  return [a, b];
}

/**
 * Waits until every one of `gateways` serves device `id`'s registry entry as Redis holds it now: a change made
 * through another instance applies there once its change notice arrives (README, "Admin API"), and a test
 * that sends the next request elsewhere waits for that instead of racing it. Each look is a lookup through
 * the instance's registry cache, which reads Redis only once the notice has dropped what it kept.
 */
export async function registryChangeSeen(gateways: readonly RunningGateway[], id: string): Promise<void> {
  const first = gateways[0];
  if (first === undefined) return;
  const stored = JSON.stringify((await first.gateway.registry.get(id)) ?? null);
  await Promise.all(
    gateways.map((g) =>
      pollUntil(
        `${id}'s registry change seen by ${g.config.instanceId}`,
        async () => JSON.stringify((await g.gateway.registryCache.get(id)) ?? null) === stored,
        { intervalMs: 5 },
      ),
    ),
  );
}
