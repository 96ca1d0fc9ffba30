// A fake legacy device: a real node:http server on loopback whose behaviour the test supplies.
import http from "node:http";
import type { AddressInfo } from "node:net";

export type DeviceHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export interface DeviceServerOptions {
  /** Default 0 (any free port); pass a former port to bring a device "back" where it was. */
  port?: number;
}

export interface DeviceServer {
  readonly port: number;
  /** http://127.0.0.1:PORT */
  readonly url: string;
  readonly server: http.Server;
  /** Closes the server and drops open (keep-alive) connections, so teardown never hangs. Idempotent. */
  stop(): Promise<void>;
}

export async function startDeviceServer(handler: DeviceHandler, opts: DeviceServerOptions = {}): Promise<DeviceServer> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    server,
    stop: () =>
      new Promise<void>((resolve) => {
        if (!server.listening) return resolve();
        // close() alone waits for idle keep-alive sockets (fetch keeps them): drop them too.
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
