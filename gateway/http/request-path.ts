/**
 * The path of a request target without its query, as the access log and the health exemptions see it: the
 * origin-form path (`/devices/dev-17/TEMPERATURE`), or an absolute-form target's path (RFC 9112 §3.2.2).
 * What Express's `req.path` gave, without Express (the device lane, front-door.ts, never enters it).
 */
export function pathOf(target: string): string {
  if (target.startsWith("/")) {
    const query = target.indexOf("?");
    return query < 0 ? target : target.slice(0, query);
  }
  if (!URL.canParse(target)) return target;
  return new URL(target).pathname;
}
