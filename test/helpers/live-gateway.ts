// A gateway process against a real Redis and Prosody, for the deploy tests that need one running: the
// image's health check is run against it, and its scrape is what the dashboard and the alerts must match.
import assert from "node:assert/strict";
import { freePort, onFreePorts } from "../../local-stack/ports.js";
import { spawnChild, type ChildHandle } from "../../local-stack/process.js";
import { waitGatewayReady } from "./gateway-process.js";
import { startStack, type Teardown } from "./stack.js";

export interface LiveGateway {
  url: string;
  port: number;
  handle: ChildHandle;
}

export interface LiveGatewayOptions {
  /** Used in messages: which gateway this is (e.g. the image's). */
  name: string;
  cwd: string;
  /** Node's arguments that start the gateway, e.g. ["dist/gateway/main.js"]. */
  nodeArgs: readonly string[];
}

/** Starts the stack and the gateway (both stopped by `teardown`), waits until it is ready, and sends it one request. */
export async function startLiveGateway(teardown: Teardown, opts: LiveGatewayOptions): Promise<LiveGateway> {
  const stack = teardown.stopLater("stack", await startStack());
  const component = stack.prosody.components[0];
  assert.ok(component);
  const launch = async (port: number): Promise<{ port: number; handle: ChildHandle; url: string }> => {
    const handle = await spawnChild(process.execPath, [...opts.nodeArgs], {
      name: opts.name.replaceAll(" ", "-"),
      cwd: opts.cwd,
      env: {
        GATEWAY_HOST: "127.0.0.1",
        GATEWAY_PORT: String(port),
        REDIS_URL: stack.redis.url,
        XMPP_COMPONENT_SERVICE: stack.prosody.componentService,
        XMPP_COMPONENT_DOMAIN: component.domain,
        XMPP_COMPONENT_SECRET: component.secret,
        DEVICE_JID_TEMPLATE: `{id}@${stack.prosody.vhost}/agent`,
        GATEWAY_DRAIN_GRACE_MS: "0",
        GATEWAY_DRAIN_TIMEOUT_MS: "1000",
        LOG_LEVEL: "warn",
      },
    });
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitGatewayReady(handle, url);
    } catch (err) {
      await handle.stop();
      throw err; // PortTaken as such: onFreePorts tries another port
    }
    return { port, handle, url };
  };
  // The port is picked again if someone took it between the probe and the gateway's listen.
  const { port, handle, url } = await onFreePorts(async () => launch(await freePort()));
  teardown.stopLater("gateway", handle);
  await fetch(`${url}/devices/nobody/x`); // one request, so that the request series exist
  return { url, port, handle };
}
