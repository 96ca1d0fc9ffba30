// @xmpp/component 0.13 ships no types. Only the surface the gateway's facade uses is declared here.
declare module "@xmpp/component" {
  import type { EventEmitter } from "node:events";

  export interface LtxElement {
    name: string;
    attrs: Record<string, string>;
    children: Array<LtxElement | string>;
    toString(): string;
  }

  export type XmlFactory = (name: string, attrs?: Record<string, string>, ...children: Array<LtxElement | string>) => LtxElement;

  export interface IqCallee {
    get(ns: string, name: string, handler: (ctx: { stanza: LtxElement; element: LtxElement }) => unknown): void;
    set(ns: string, name: string, handler: (ctx: { stanza: LtxElement; element: LtxElement }) => unknown): void;
  }

  export interface Component extends EventEmitter {
    status: string;
    socket: (import("node:net").Socket & { setEncoding(enc: BufferEncoding): unknown }) | null;
    start(): Promise<unknown>;
    stop(): Promise<unknown>;
    send(el: LtxElement): Promise<void>;
    /** Raw serialized XML onto the stream (refused while the connection closes). */
    write(data: string): Promise<void>;
    reconnect: { stop(): void; reconnect(): Promise<void>; delay: number };
    iqCallee: IqCallee;
  }

  export function component(options: { service: string; domain: string; password: string }): Component;
  export const xml: XmlFactory;
  const _default: { component: typeof component; xml: XmlFactory };
  export default _default;
}
