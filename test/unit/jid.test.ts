/** JID comparison: localpart and domain case-insensitive, resource exact (RFC 7622). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { bareJid, normalizeJid, sameJid } from "../../lib/xmpp/jid.js";

describe("normalizeJid", () => {
  it("lower-cases localpart and domain, keeps the resource as is", () => {
    assert.equal(normalizeJid("Dev-17@LocalHost/Agent"), "dev-17@localhost/Agent");
  });

  it("handles a bare JID and a domain-only JID", () => {
    assert.equal(normalizeJid("Dev-17@Devices.Example.COM"), "dev-17@devices.example.com");
    assert.equal(normalizeJid("Gateway.LocalHost"), "gateway.localhost");
  });

  it("splits at the first slash: a resource may itself contain slashes and upper case", () => {
    assert.equal(normalizeJid("A@B/Res/With/Slash@AndAt"), "a@b/Res/With/Slash@AndAt");
  });

  it("keeps an empty string empty", () => {
    assert.equal(normalizeJid(""), "");
  });
});

describe("sameJid", () => {
  it("matches across case in localpart and domain", () => {
    assert.equal(sameJid("Dev-17@Localhost/agent", "dev-17@localhost/agent"), true);
    assert.equal(sameJid("dev-17@LOCALHOST", "DEV-17@localhost"), true);
  });

  it("does not match when only the resource differs, even by case", () => {
    assert.equal(sameJid("dev@localhost/agent", "dev@localhost/Agent"), false);
    assert.equal(sameJid("dev@localhost/agent", "dev@localhost/agent2"), false);
  });

  it("does not match a full JID against its bare JID", () => {
    assert.equal(sameJid("dev@localhost/agent", "dev@localhost"), false);
  });

  it("is false when either side is undefined, including both", () => {
    assert.equal(sameJid(undefined, "dev@localhost/agent"), false);
    assert.equal(sameJid("dev@localhost/agent", undefined), false);
    assert.equal(sameJid(undefined, undefined), false);
  });

  it("does not match different localparts or domains", () => {
    assert.equal(sameJid("dev-1@localhost/agent", "dev-2@localhost/agent"), false);
    assert.equal(sameJid("dev-1@a.example/agent", "dev-1@b.example/agent"), false);
  });
});

describe("bareJid", () => {
  it("drops the resource and lower-cases", () => {
    assert.equal(bareJid("Dev-17@LocalHost/Agent"), "dev-17@localhost");
  });

  it("lower-cases a JID that has no resource", () => {
    assert.equal(bareJid("Dev-17@LocalHost"), "dev-17@localhost");
  });

  it("cuts at the first slash", () => {
    assert.equal(bareJid("a@b/c/d"), "a@b");
  });
});
