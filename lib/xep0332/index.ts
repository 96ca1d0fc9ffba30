/** XEP-0332 "HTTP over XMPP transport" codec: pure functions over a neutral XML tree. */
export * from "./constants.js";
export * from "./errors.js";
export * from "./xml.js";
export * from "./headers.js";
export * from "./body.js";
export * from "./chunks.js";
export * from "./message.js";
