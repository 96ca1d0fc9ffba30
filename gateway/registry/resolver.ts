/** Where and how a device is reached. The Redis-backed registry extends this; the template is its default rule. */
export interface DeviceRoute {
  deviceId: string;
  transport: "xmpp";
  jid: string;
  timeoutMs: number;
}

export interface DeviceResolver {
  resolve(deviceId: string): Promise<DeviceRoute>;
}

/** The default rule: every valid device id is an XMPP device at `DEVICE_JID_TEMPLATE` with `{id}` filled in. */
export class TemplateResolver implements DeviceResolver {
  constructor(private readonly jidTemplate: string, private readonly timeoutMs: number) {}

  async resolve(deviceId: string): Promise<DeviceRoute> {
    return { deviceId, transport: "xmpp", jid: this.jidTemplate.replaceAll("{id}", deviceId), timeoutMs: this.timeoutMs };
  }
}
