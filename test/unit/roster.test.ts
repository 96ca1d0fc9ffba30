/**
 * Roster (lib/roster.ts): members added and removed in any order, each exactly once, counted and walked;
 * a walk over a snapshot survives removals made during it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Roster, type RosterMember } from "../../lib/roster.js";

class Member implements RosterMember {
  rosterIndex = -1;
  constructor(readonly name: string) {}
}

const names = (roster: Roster<Member>) => [...roster.values()].map((m) => m.name).sort();

describe("Roster", () => {
  it("adds, removes from the middle, the end and the start, and keeps every index right", () => {
    const roster = new Roster<Member>();
    const [a, b, c, d] = ["a", "b", "c", "d"].map((n) => new Member(n)) as [Member, Member, Member, Member];
    for (const m of [a, b, c, d]) roster.add(m);
    assert.equal(roster.size, 4);
    roster.remove(b);
    assert.deepEqual(names(roster), ["a", "c", "d"]);
    roster.remove(d);
    roster.remove(a);
    assert.deepEqual(names(roster), ["c"]);
    assert.equal(c.rosterIndex, 0, "the member moved into a freed place knows its new index");
    for (const m of [a, b, d]) assert.equal(m.rosterIndex, -1);
    roster.remove(c);
    assert.equal(roster.size, 0);
  });

  it("ignores a second add, a second remove, and a member of another roster", () => {
    const roster = new Roster<Member>();
    const other = new Roster<Member>();
    const a = new Member("a");
    const stranger = new Member("stranger");
    roster.add(a);
    roster.add(a);
    assert.equal(roster.size, 1);
    other.add(new Member("x"));
    other.add(stranger);
    roster.remove(stranger); // its index (1) is out of this roster's range
    const here = new Member("here");
    roster.add(here);
    const foreign = new Member("foreign");
    other.add(foreign); // index 2 in `other`
    stranger.rosterIndex = 1; // as if it sat at index 1 here: it does not
    roster.remove(stranger);
    assert.deepEqual(names(roster), ["a", "here"]);
    roster.remove(a);
    roster.remove(a);
    assert.deepEqual(names(roster), ["here"]);
  });

  it("a snapshot can be walked while its members remove themselves", () => {
    const roster = new Roster<Member>();
    const members = Array.from({ length: 50 }, (_, i) => new Member(String(i)));
    for (const m of members) roster.add(m);
    const seen: string[] = [];
    for (const m of roster.snapshot()) {
      seen.push(m.name);
      roster.remove(m);
    }
    assert.equal(seen.length, 50);
    assert.equal(roster.size, 0);
  });
});
