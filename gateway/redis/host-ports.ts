/** One `host:port` of a list setting (REDIS_SENTINELS, REDIS_CLUSTER_NODES), as ioredis takes an address. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * A `host:port,host:port,…` list as addresses, or the first entry that is not `host:port` (a DNS name, an
 * IPv4 address or a bracketed IPv6 address, then a port from 1 to 65535), so that the configuration error
 * names it. Blank entries (`a:1,,b:2`, a trailing comma) are refused too: a list written by hand that lost an
 * entry should not start half-configured.
 */
export function parseHostPorts(value: string): { addresses: HostPort[] } | { bad: string } {
  const addresses: HostPort[] = [];
  for (const raw of value.split(",")) {
    const entry = raw.trim();
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(entry);
    const port = Number(m?.[3]);
    if (!m || port < 1 || port > 65535) return { bad: entry };
    addresses.push({ host: m[1] ?? m[2] ?? "", port });
  }
  return { addresses };
}
