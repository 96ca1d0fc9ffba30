/** What a Roster needs of its members: a slot of their own for their place in it (-1: not in one). */
export interface RosterMember {
  rosterIndex: number;
}

/**
 * The members of a group that comes and goes with the requests (the exchanges in flight, the open
 * connections): added, removed in any order, counted and walked. An array with swap-remove, each member
 * knowing its own index, rather than a Set or a Map keyed by the member.
 *
 * Why not a Set: V8 keeps a Set's or a Map's entries in a hash table it replaces as entries come and go,
 * and it allocates the new table where the old one was. A long-lived collection's tables are in the old
 * generation, and a replaced table goes on pointing at the members it held at that moment until the next
 * full collection. Every young collection in between treats those pointers as live: each request that
 * was in flight when a table was replaced survives, is promoted, and everything it holds with it. With
 * per-request members that is nearly every request (measured in docs/benchmark.md, "What a request
 * leaves behind"). An array's slot is cleared when its member leaves, so nothing outlives its request.
 */
export class Roster<T extends RosterMember> {
  private readonly members: T[] = [];

  get size(): number {
    return this.members.length;
  }

  add(member: T): void {
    if (member.rosterIndex >= 0) return;
    member.rosterIndex = this.members.length;
    this.members.push(member);
  }

  /** Removes `member` if it is here: the last member takes its place. */
  remove(member: T): void {
    const index = member.rosterIndex;
    if (index < 0 || this.members[index] !== member) return;
    const last = this.members.pop() as T;
    if (last !== member) {
      this.members[index] = last;
      last.rosterIndex = index;
    }
    member.rosterIndex = -1;
  }

  /** A copy of the members now, in no particular order: removing (or adding) while walking it is safe. */
  snapshot(): T[] {
    return this.members.slice();
  }
}
