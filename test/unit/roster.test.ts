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

const names = (roster: Roster<Member>) =>
  roster
    .snapshot()
    .map((m) => m.name)
    .sort();

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
    const b = new Member("b");
    roster.add(a);
    roster.add(a);
    roster.add(b);
    assert.equal(roster.size, 2);
    const stranger = new Member("stranger");
    other.add(new Member("x"));
    other.add(stranger); // index 1 in `other`, where `b` sits in `roster`
    roster.remove(stranger);
    assert.deepEqual(names(roster), ["a", "b"], "b stays: the stranger only has the same index");
    roster.remove(a);
    roster.remove(a);
    assert.deepEqual(names(roster), ["b"]);
    assert.equal(other.size, 2);
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
